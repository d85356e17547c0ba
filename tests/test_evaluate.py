"""``emo7ion evaluate`` on the .keras model and its converted .tflite: same figures, same label order."""

import json

import numpy as np
import pytest

from emo7ion.cli import main
from emo7ion.core import emotions


def run_json(capsys, *argv) -> tuple[dict, str]:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), out


def test_keras_and_tflite_agree(tiny_model, converted, tiny_data, capsys, tmp_path):
    val = str(tiny_data / "val")
    keras_result, text = run_json(capsys, "evaluate", str(tiny_model), val, "--json", "--plot", str(tmp_path / "c.png"))
    tflite = converted["out"] / f"{converted['stem']}-float32.tflite"
    tflite_result, _ = run_json(capsys, "evaluate", str(tflite), val, "--json")

    for result in (keras_result, tflite_result):
        assert result["n"] == 84 and 0.0 <= result["accuracy"] <= 1.0
        assert list(result["per_class"]) == list(emotions.LABELS)
        matrix = np.array(result["confusion"])
        assert matrix.shape == (7, 7) and matrix.sum() == 84
        assert (matrix.sum(axis=1) == 12).all()  # rows are the true classes: 12 faces each
        assert result["accuracy"] == pytest.approx(np.trace(matrix) / 84, abs=1e-4)
        assert result["faces_per_second"] > 0
    assert keras_result["confusion"] == tflite_result["confusion"]
    assert tflite_result["format"] == "tflite" and keras_result["format"] == "keras"
    assert "confusion (rows true, columns predicted)" in text and "macro F1" in text
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_evaluate_reports_bad_inputs(tmp_path, tiny_data, capsys):
    assert main(["evaluate", str(tmp_path / "none.tflite"), str(tiny_data / "val")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert main(["evaluate", str(tmp_path / "m.onnx"), str(tiny_data / "val")]) == 2
    assert "expected a .keras or .tflite" in capsys.readouterr().err
