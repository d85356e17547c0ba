"""Training runs on any Keras 3 backend: one tiny epoch under JAX in its own process (the backend is fixed
at import), its model then loaded and converted to int8 by the (TensorFlow) converter, as a GPU machine's
run would be. The TensorFlow half is the session's ``tiny_model`` and ``converted`` fixtures, checked here."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from emo7ion.core.runtime import EmotionClassifier


def test_tensorflow_run_converts_to_int8(tiny_model, converted):
    import keras

    assert keras.backend.backend() == "tensorflow"
    classifier = EmotionClassifier(converted["out"] / f"{converted['stem']}-int8.tflite")
    assert classifier.input_dtype == "int8"
    assert converted["report"]["checks"]["drop_ok"]


@pytest.mark.slow
def test_one_epoch_under_jax_loads_and_converts(tiny_data, tmp_path, short_converter):
    pytest.importorskip("jax")
    out = tmp_path / "run"
    hparams = tmp_path / "hparams.json"
    hparams.write_text('{"bn_momentum": 0.5}')
    # XLA still compiles every step, without LLVM's optimisation passes: the compile, not the seven tiny steps,
    # is what a test run waits for.
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}
    result = subprocess.run(
        [sys.executable, "-m", "emo7ion", "train", "--data", str(tiny_data), "--out", str(out), "--epochs", "1",
         "--batch-size", "32", "--warmup-epochs", "0", "--subset", "200", "--hparams", str(hparams)],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "jax" and summary["epochs_run"] == 1

    from emo7ion.converter.convert import convert

    report = convert(out / "model.keras", tiny_data, tmp_path / "tflite", calibration=70, max_drop=100.0,
                     progress=False)
    assert 0.0 <= report["variants"]["int8"]["accuracy"] <= 1.0
    classifier = EmotionClassifier(tmp_path / "tflite" / "model-int8.tflite")
    assert classifier.input_dtype == "int8"
    assert classifier.predict(np.zeros((2, 48, 48, 1), np.float32)).shape == (2, 7)
