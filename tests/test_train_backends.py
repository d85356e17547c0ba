"""Training runs on any Keras 3 backend: one tiny epoch under TensorFlow and under JAX, each model then
loaded and converted to int8 by the (TensorFlow) converter, as a GPU machine's run would be."""

import os
import subprocess
import sys

import numpy as np
import pytest

from emo7ion.core.runtime import EmotionClassifier


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_one_epoch_on_each_backend_loads_and_converts(backend, tiny_data, tmp_path):
    pytest.importorskip(backend)
    out = tmp_path / "run"
    hparams = tmp_path / "hparams.json"
    hparams.write_text('{"bn_momentum": 0.5}')
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "emo7ion", "train", "--data", str(tiny_data), "--out", str(out), "--epochs", "1",
         "--batch-size", "32", "--warmup-epochs", "0", "--subset", "200", "--hparams", str(hparams)],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Using {backend} backend" in result.stderr or backend == "tensorflow"

    from emo7ion.converter.convert import convert

    report = convert(out / "model.keras", tiny_data, tmp_path / "tflite", calibration=70, max_drop=100.0,
                     progress=False)
    int8 = tmp_path / "tflite" / "model-int8.tflite"
    assert 0.0 <= report["variants"]["int8"]["accuracy"] <= 1.0
    classifier = EmotionClassifier(int8)
    assert classifier.input_dtype == "int8"
    assert classifier.predict(np.zeros((2, 48, 48, 1), "float32")).shape == (2, 7)
