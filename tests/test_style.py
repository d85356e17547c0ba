"""The code stays ruff-clean and the device side stays free of the training stack."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.is_file():
        pytest.skip("ruff is not installed in this environment")
    result = subprocess.run([str(ruff), "check", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


def imports_of(file: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", ["core", "edge"])
def test_device_code_never_imports_training_stack(folder):
    """A Pi installs emo7ion[edge] without TensorFlow; only core.runtime's last fallback may name it."""
    forbidden = ("keras", "keras_tuner", "emo7ion.training", "emo7ion.converter", "emo7ion.aggregator")
    for file in (ROOT / folder).rglob("*.py"):
        names = imports_of(file)
        assert not [n for n in names if n.split(".")[0] in forbidden or n.startswith(forbidden)], file
        if file.relative_to(ROOT).as_posix() != "core/runtime.py":
            assert not [n for n in names if n.split(".")[0] == "tensorflow"], file
