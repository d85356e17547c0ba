"""The shipped model card states what was measured on the shipped files, and nothing else."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from emo7ion.core import provenance

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SCRIPT = ROOT / "scripts" / "card_figures.py"


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_card_figures_match_the_measurements():
    result = run_script(str(MODELS), "--check")
    assert result.returncode == 0, result.stderr


def test_measurements_are_of_the_shipped_files():
    int8 = json.loads((MODELS / "eval-int8-val.json").read_text())
    assert int8["sha256"] == provenance.sha256_file(MODELS / "emo7ion-edge-int8.tflite")
    meta = provenance.read((MODELS / "emo7ion-edge-int8.tflite").read_bytes())
    assert meta["version"] == int8["version"]
    assert meta["source_sha256"] == provenance.sha256_file(MODELS / "emo7ion-edge.keras")
    report = json.loads((MODELS / "conversion-report.json").read_text())
    keras = json.loads((MODELS / "eval-keras-val.json").read_text())
    assert abs(report["keras"]["accuracy"] - keras["accuracy"]) < 1e-3
    assert keras["n"] == int8["n"] == report["val"]["n"]
    flip = json.loads((MODELS / "eval-int8-flip-val.json").read_text())
    assert flip["sha256"] == int8["sha256"] and flip["flip_average"] is True and flip["n"] == int8["n"]
    assert not int8.get("flip_average")
    other = MODELS / "eval-int8-val-tflite-runtime.json"
    if other.is_file():  # measured in a venv kept off this machine: may be of the file this one was restamped from
        same_weights = {int8["sha256"], (meta.get("restamped_from") or {}).get("sha256")}
        assert json.loads(other.read_text())["sha256"] in same_weights


def test_a_changed_measurement_is_caught_then_rewritten(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for path in MODELS.glob("*.json"):
        shutil.copy(path, folder)
    shutil.copy(MODELS / "MODEL_CARD.md", folder)
    keras = json.loads((folder / "eval-keras-val.json").read_text())
    keras["accuracy"] = 0.7123
    keras["confusion"][0][0] += 1000
    (folder / "eval-keras-val.json").write_text(json.dumps(keras))

    stale = run_script(str(folder), "--check")
    assert stale.returncode == 1 and "figures differ" in stale.stderr
    assert run_script(str(folder)).returncode == 0
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| Keras | **71.23%** |" in card
    confusion_rows = [line.split() for line in card.splitlines() if line.startswith("angry ")]
    assert [int(n) for n in confusion_rows[0][1:]] == keras["confusion"][0]
    assert run_script(str(folder), "--check").returncode == 0


def test_a_card_without_markers_is_refused(tmp_path):
    for path in MODELS.glob("*.json"):
        shutil.copy(path, tmp_path)
    (tmp_path / "MODEL_CARD.md").write_text("# a card with prose only\n")
    result = run_script(str(tmp_path))
    assert result.returncode != 0 and "figures:accuracy" in result.stderr
