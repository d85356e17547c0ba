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


FLOORS = {"core": "core", "edge": "edge", "aggregator": "aggregator", "training": "training", "converter": "converter",
          "broker_config": "broker_config", "models": "models"}
"""emo7ion.<name> -> the folder it lives in: core is the ground floor, the others are wings. Everything else
under ``emo7ion.`` (commands, bench, demo, cli) is the top package in ``emo7ion/``."""
WINGS = tuple(name for name in FLOORS if name != "core")
ALLOWED = {("converter", "training"): "conversion calibrates on, and checks parity against, the training data set"}
"""Wing-to-wing imports that are part of the design, each with its reason."""


def floor_of(module: str) -> str | None:
    """The folder an imported module belongs to ('emo7ion' for the top package), None outside the project."""
    parts = module.split(".")
    if parts[0] != "emo7ion":
        return None
    return FLOORS.get(parts[1], "emo7ion") if len(parts) > 1 else "emo7ion"


def project_imports(file: Path) -> set[str]:
    """The project's floors ``file`` imports, ``from emo7ion import core`` counted as importing core."""
    floors = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "emo7ion" \
                else [node.module]
        else:
            continue
        floors |= {floor for floor in map(floor_of, modules) if floor is not None}
    return floors


@pytest.mark.parametrize("folder", ["core", *WINGS])
def test_layers_import_only_downwards(folder):
    """Core imports no wing; no wing imports another (but for ALLOWED); only emo7ion/ imports the top package."""
    allowed = {folder, "core"} | {below for (above, below) in ALLOWED if above == folder}
    if folder == "core":
        allowed = {"core"}
    wrong = {}
    for file in (ROOT / folder).rglob("*.py"):
        bad = project_imports(file) - allowed
        if bad:
            wrong[file.relative_to(ROOT).as_posix()] = sorted(bad)
    assert not wrong, f"{folder}/ imports what it must not: {wrong}"


def test_layering_check_sees_a_wrong_import(tmp_path):
    """The check above can fail: an import of the top package or of another wing is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("from emo7ion import __version__\nimport emo7ion.aggregator.store\nfrom emo7ion import core\n"
                      "from emo7ion.core import messages\nimport numpy\n")
    assert project_imports(sample) == {"emo7ion", "aggregator", "core"}


def core_halves_imported(file: Path) -> set[str]:
    """Which halves of core ``file`` imports: 'service' (emo7ion.core.service...) or 'contract' (any other core
    module)."""
    halves = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.startswith("emo7ion.core.service"):
                halves.add("service")
            elif module.startswith("emo7ion.core."):
                halves.add("contract")
    return halves


def test_core_halves_never_import_each_other():
    """The contract (labels, crops, runner, payloads) and the service kit (settings, broker, errors, stopping) are
    separate: a model or a payload does not depend on how a service is run, and the other way round."""
    wrong = {}
    for file in (ROOT / "core").rglob("*.py"):
        own = "service" if "service" in file.relative_to(ROOT / "core").parts else "contract"
        other = core_halves_imported(file) - {own}
        if other:
            wrong[file.relative_to(ROOT).as_posix()] = sorted(other)
    assert not wrong, f"core's halves import each other: {wrong}"


def test_core_halves_check_sees_a_crossing(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from emo7ion.core import messages\nfrom emo7ion.core.service import settings\n"
                      "import emo7ion.core.service.errors\n")
    assert core_halves_imported(sample) == {"contract", "service"}
