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


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert len(capsys.readouterr().out) > 300


def test_train_refuses_hparams_of_another_model(tmp_path, capsys):
    hparams = tmp_path / "best.json"
    hparams.write_text(json.dumps({"model": "seed", "hparams": {"dense1_units": 256}}))
    assert main(["train", "--model", "edge", "--hparams", str(hparams), "--data", str(tmp_path)]) == 2
    assert "for 'seed', not 'edge'" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{nope")
    assert main(["train", "--hparams", str(tmp_path / "broken.json"), "--data", str(tmp_path)]) == 2
    assert "not JSON" in capsys.readouterr().err
