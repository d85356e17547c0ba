"""The installed ``emo7ion`` command explains itself and names bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emo7ion.cli import main

SUBCOMMANDS = ["train", "tune", "evaluate", "convert"]


def test_console_script_help():
    exe = Path(sys.executable).parent / "emo7ion"  # installed beside the interpreter running the tests
    assert exe.is_file(), "the emo7ion console script is not installed"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


HELP_NAMES = {
    ("train",): ["--data", "--model", "--out", "--epochs", "--resume", "--hparams", "checkpoint"],
    ("tune",): ["--data", "--max-trials", "--algorithm", "best_hparams.json", "resume"],
    ("evaluate",): ["model", "data_dir", "--split", "--json", "--through-detector", "confusion matrix"],
    ("convert",): ["--data", "--out", "--max-drop", "--calibration", "--model-version", "int8", "provenance"],
    ("edge",): ["run", "check", "detect"],
    ("edge", "run"): ["--config", "--source", "--broker", "--venue", "--camera", "--model", "--outbox", "--out OUT"],
    ("edge", "check"): ["--config", "--source", "--broker", "--model", "--timeout"],
    ("broker",): ["init", "add-camera", "add-aggregator", "add-viewer"],
    ("aggregator", "run"): ["--config", "--broker", "--db", "--host", "--port", "--token", "--venues-file"],
    ("demo",): ["--port", "--duration"],
    ("bench",): ["classifier", "edge", "people", "ingest"],
}
"""For each command, what its help must name: the options and subcommands a user needs (a help that lost
one, or an option renamed without its help, fails), and a word of what it does."""


@pytest.mark.parametrize("command", list(HELP_NAMES), ids=" ".join)
def test_each_command_help_names_what_matters(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: emo7ion {' '.join(command)}")
    assert [name for name in HELP_NAMES[command] if name not in shown] == []


def test_train_refuses_hparams_of_another_model(tmp_path, capsys):
    hparams = tmp_path / "best.json"
    hparams.write_text(json.dumps({"model": "seed", "hparams": {"dense1_units": 256}}))
    assert main(["train", "--model", "edge", "--hparams", str(hparams), "--data", str(tmp_path)]) == 2
    assert "for 'seed', not 'edge'" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{nope")
    assert main(["train", "--hparams", str(tmp_path / "broken.json"), "--data", str(tmp_path)]) == 2
    assert "not JSON" in capsys.readouterr().err
