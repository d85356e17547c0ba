"""scripts/restamp_model.py: a release that changes a model's stored crop contract and version, never its weights,
and the shipped files are exactly what it makes from the files they were restamped from."""

import importlib.util
import json
from pathlib import Path

import pytest

from emo7ion.core import faces, provenance
from emo7ion.core.runtime import EmotionClassifier
from emo7ion.core.service.resources import shipped_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("restamp_model", ROOT / "scripts" / "restamp_model.py")
restamp_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(restamp_model)

SHIPPED = ("emo7ion-edge-int8.tflite", "emo7ion-edge-float16.tflite")


def unrestamped(path: Path) -> bytes:
    """The file ``path`` was restamped from, rebuilt from its ``restamped_from`` record."""
    data = path.read_bytes()
    meta = provenance.read(data)
    old = meta.pop("restamped_from")
    return provenance.embed(data, {**meta, "input": old["input"], "version": old["version"]})


def a_contract_1_model(tmp_path: Path, version: str = "emo7ion-edge-0.9") -> Path:
    """The shipped weights with a contract-1 provenance (no contract version, margin 0.1), as 1.0-1.2 carried."""
    data = shipped_model().read_bytes()
    meta = {key: value for key, value in provenance.read(data).items() if key != "restamped_from"}
    contract_1 = {key: value for key, value in faces.V1.as_dict().items() if key != "version"}
    path = tmp_path / "old.tflite"
    path.write_bytes(provenance.embed(data, {**meta, "input": contract_1, "version": version}))
    return path


def test_restamping_changes_the_contract_and_version_and_keeps_everything_else(tmp_path, capsys):
    path = a_contract_1_model(tmp_path)
    before, before_sha = path.read_bytes(), provenance.sha256_file(path)
    old_meta = provenance.read(before)
    assert EmotionClassifier(path).crop_margin == 0.1

    assert restamp_model.main(["--version", "emo7ion-edge-0.9.1", str(path)]) == 0
    after = path.read_bytes()
    meta = provenance.read(after)
    assert provenance.strip(after) == provenance.strip(before)  # the same weights, byte for byte
    assert meta["input"] == faces.CONTRACT.as_dict() and meta["version"] == "emo7ion-edge-0.9.1"
    assert meta["restamped_from"] == {"sha256": before_sha, "version": "emo7ion-edge-0.9",
                                      "input": old_meta["input"]}
    kept = set(old_meta) - {"input", "version"}
    assert {key: meta[key] for key in kept} == {key: old_meta[key] for key in kept}  # labels, source, converter...
    classifier = EmotionClassifier(path)
    assert classifier.crop_margin == faces.CONTRACT.margin
    assert classifier.model_id["version"] == "emo7ion-edge-0.9.1"
    assert "contract 1, margin 0.1" in capsys.readouterr().out

    # again: nothing to do, the file is untouched
    assert restamp_model.main(["--version", "emo7ion-edge-0.9.1", str(path)]) == 0
    assert path.read_bytes() == after and "left alone" in capsys.readouterr().out


def test_the_same_input_gives_the_same_bytes_and_a_dry_run_writes_nothing(tmp_path, capsys):
    path = a_contract_1_model(tmp_path)
    before = path.read_bytes()
    assert restamp_model.main(["--dry-run", "--version", "v2", str(path)]) == 0
    assert path.read_bytes() == before and "dry run" in capsys.readouterr().out
    restamp_model.main(["--version", "v2", str(path)])
    first = path.read_bytes()
    path.write_bytes(before)
    restamp_model.main(["--version", "v2", str(path)])
    assert path.read_bytes() == first


def test_a_file_without_provenance_or_a_reused_version_is_refused(tmp_path, capsys):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(provenance.strip(shipped_model().read_bytes()))
    assert restamp_model.main(["--version", "v2", str(bare)]) == 2
    assert "carries no provenance" in capsys.readouterr().err
    path = a_contract_1_model(tmp_path, version="v1")
    assert restamp_model.main(["--version", "v1", str(path)]) == 2
    assert "choose a new version" in capsys.readouterr().err
    assert provenance.read(path.read_bytes())["version"] == "v1"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_files_are_the_1_2_files_restamped(name, tmp_path):
    """Rebuilding each shipped file's predecessor from its record gives the sha256 it records, and restamping that
    gives the shipped file back: the release step is reproducible and changed nothing but the provenance."""
    path = ROOT / "models" / name
    meta = provenance.read(path.read_bytes())
    if "restamped_from" not in meta:
        pytest.skip(f"{name} was converted, not restamped")
    old = tmp_path / name
    old.write_bytes(unrestamped(path))
    assert provenance.sha256_file(old) == meta["restamped_from"]["sha256"]
    assert restamp_model.main(["--version", meta["version"], str(old)]) == 0
    assert old.read_bytes() == path.read_bytes()


def test_the_re_run_measurements_name_the_restamped_file():
    """The evaluations re-run for the release name the restamped file and headline its stored margin (the
    tflite-runtime one, measured in a venv not kept here, names its predecessor: tests/test_model_card.py)."""
    int8 = ROOT / "models" / "emo7ion-edge-int8.tflite"
    meta = provenance.read(int8.read_bytes())
    sha = provenance.sha256_file(int8)
    for name in ("eval-int8-val.json", "eval-int8-flip-val.json", "eval-int8-through-detector-val.json",
                 "eval-int8-through-centerface-int8-val.json"):
        result = json.loads((ROOT / "models" / name).read_text())
        assert (result["sha256"], result["version"]) == (sha, meta["version"]), name
    through = json.loads((ROOT / "models" / "eval-int8-through-detector-val.json").read_text())
    assert through["margin"] == through["contract_margin"] == EmotionClassifier(int8).crop_margin
