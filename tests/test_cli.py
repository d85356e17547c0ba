"""The installed ``emo7ion`` command explains itself and names bad input."""

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from emo7ion.cli import main
from emo7ion.commands import broker as broker_commands
from emo7ion.core.service.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

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


USER_ERRORS = [("core.service.settings", "ConfigError"), ("core.service.broker_errors", "BrokerRefusedError"),
               ("broker_config.runner", "BrokerError"), ("broker_config.certificates", "CertificateError"),
               ("edge.detect.base", "DetectorError"), ("edge.sources.base", "SourceUnavailable"),
               ("edge.sources.video", "RecordingError"), ("edge.outbox", "OutboxError"),
               ("converter.convert", "ParityError"), ("converter.variants", "ConversionError"),
               ("training.data", "DataError")]
"""The error family of issue 20 part 6: each is the user's to fix, and each is a UserError."""


@pytest.mark.parametrize("module, name", USER_ERRORS, ids=[name for _, name in USER_ERRORS])
def test_each_user_error_becomes_one_line_and_status_2_in_the_cli(module, name, monkeypatch, capsys):
    error = getattr(importlib.import_module(f"emo7ion.{module}"), name)
    assert issubclass(error, UserError)

    def fails(args):
        raise error("cut.onnx is 100,000 bytes, not a model")

    monkeypatch.setattr(broker_commands, "run_init", fails)
    assert main(["broker", "init", "somewhere"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "emo7ion broker: error: cut.onnx is 100,000 bytes, not a model\n" and captured.out == ""


def test_only_the_cli_ends_the_process():
    """No command or library module exits by itself (sys.exit, exit, SystemExit): failures are raised, and
    cli.main alone decides the status and the line a user reads."""
    exits = []
    for folder in ("emo7ion/commands", "core", "edge", "aggregator", "broker_config", "converter", "training"):
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                name = node.func if isinstance(node, ast.Call) else node.exc if isinstance(node, ast.Raise) else None
                text = ast.unparse(name) if name is not None else ""
                if text in ("sys.exit", "exit", "quit", "os._exit", "SystemExit") or text.startswith("SystemExit("):
                    exits.append(f"{file.relative_to(ROOT)}:{node.lineno}")
    assert exits == []
