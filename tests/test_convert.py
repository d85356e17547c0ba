"""The real converter on a model trained in the session: every variant, provenance, parity, failures."""

import json

import numpy as np
import pytest

from emo7ion.converter.convert import ParityError, convert
from emo7ion.converter.variants import VARIANTS
from emo7ion.core import emotions, faces, provenance
from emo7ion.core.runtime import EmotionClassifier, ModelError, interpreter_class
from emo7ion.training import data


def test_every_variant_is_written_with_a_report(converted):
    out, stem = converted["out"], converted["stem"]
    for variant in VARIANTS:
        assert (out / f"{stem}-{variant}.tflite").is_file()
    report = json.loads((out / "report.json").read_text())
    assert set(report["variants"]) == set(VARIANTS)
    for row in report["variants"].values():
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["agreement"] <= 1.0
        assert row["faces_per_second_b1"] > 0 and row["faces_per_second_b32"] > 0
    # float32 is the same network: it must agree with Keras almost exactly.
    assert report["variants"]["float32"]["agreement"] >= 0.99
    assert report["variants"]["float32"]["max_prob_diff"] < 1e-3
    assert report["checks"]["int8_size_ratio"] < 0.34
    assert "| variant |" in (out / "report.md").read_text()
    assert not list(out.parent.glob(".out-*")), "the scratch folder must be gone"


def test_int8_model_has_int8_io_and_provenance(converted):
    path = converted["out"] / f"{converted['stem']}-int8.tflite"
    classifier = EmotionClassifier(path)
    assert classifier.input_dtype == "int8"
    details = classifier._interpreter.get_output_details()[0]
    assert details["dtype"] == np.int8
    meta = provenance.read(path.read_bytes())
    assert meta["labels"] == list(emotions.LABELS)
    assert meta["input"] == faces.CONTRACT.as_dict()
    assert meta["variant"] == "int8" and len(meta["source_sha256"]) == 64
    assert meta["tensorflow"] and meta["converter"].startswith("emo7ion")
    assert classifier.model_id["variant"] == "int8"


def test_max_drop_fails_on_a_broken_calibration(tiny_model, tiny_data, tmp_path, monkeypatch, short_converter,
                                                capsys):
    # Calibrate int8 on faces 255x too bright (the classic "forgot to scale" bug): activations clip.
    from emo7ion.cli import main
    from emo7ion.converter import variants

    real = variants.convert

    def broken(model, variant, calibration=None):
        return real(model, variant, None if calibration is None else calibration * 255.0)

    monkeypatch.setattr(variants, "convert", broken)
    out = tmp_path / "out"
    with pytest.raises(ParityError, match="points below"):
        convert(tiny_model, tiny_data, out, calibration=70, max_drop=1.0, progress=False)
    assert not out.exists()
    # the command: a user error like any other, one line from cli.py and exit 2 (it printed FAILED, exit 1)
    capsys.readouterr()
    assert main(["convert", str(tiny_model), "--data", str(tiny_data), "--out", str(out), "--calibration", "70",
                 "--max-drop", "1.0"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("emo7ion convert: error: ") and "points below" in error[-1], error
    assert not out.exists()
    rejected = json.loads((tmp_path / "out.rejected" / "report.json").read_text())
    assert rejected["checks"]["drop_ok"] is False and rejected["checks"]["int8_drop_points"] > 1.0


def test_corrupt_keras_file_and_missing_data(tiny_data, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 this is not a keras archive")
    with pytest.raises(ValueError, match="not a loadable .keras model"):
        convert(bad, tiny_data, tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError):
        convert(tmp_path / "missing.keras", tiny_data, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_data_dir_fails_before_writing(tiny_model, tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        convert(tiny_model, tmp_path / "no-data", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_installed_interpreters_agree_on_int8(converted, tiny_data):
    path = converted["out"] / f"{converted['stem']}-int8.tflite"
    x = faces.normalise(data.load(tiny_data, "val").x)
    results = {}
    for name in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
        try:
            interpreter_class(name)
        except ModelError:
            continue
        results[name] = EmotionClassifier(path, interpreter=name).predict(x)
    assert len(results) >= 2, f"only {list(results)} installed"
    names = list(results)
    for other in names[1:]:
        assert (results[other].argmax(1) == results[names[0]].argmax(1)).all()
        np.testing.assert_allclose(results[other], results[names[0]], atol=1 / 128)
