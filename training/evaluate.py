"""``emo7ion evaluate``: accuracy and speed of a ``.keras`` or ``.tflite`` model on an image-folder set.

A ``.tflite`` model runs through ``core.runtime`` exactly as on a device, so TensorFlow is needed only
for ``.keras`` files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emo7ion.core import faces
from emo7ion.core.runtime import mirror_averaged
from emo7ion.training import data as datasets
from emo7ion.training import metrics


def keras_predictor(path: Path, flip: bool = False) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # keras raises many types for a damaged zip or config
        raise ValueError(f"{path} is not a loadable .keras model: {error}") from error

    def one_pass(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False))

    def predict(batch: np.ndarray) -> np.ndarray:
        return mirror_averaged(one_pass, batch) if flip else one_pass(batch)

    return predict, {"format": "keras", "flip_average": flip}


def tflite_predictor(path: Path, threads: int, interpreter: str | None, flip: bool = False,
                     allow_unversioned: bool = False) -> tuple[Callable, dict]:
    """The device's own classifier (``core.runtime``), flip averaging included, so the figure is the agent's;
    a file without whole provenance is refused as on a device unless ``allow_unversioned``."""
    from emo7ion.core.runtime import EmotionClassifier

    classifier = EmotionClassifier(path, num_threads=threads, interpreter=interpreter, flip_average=flip,
                                   allow_unversioned=allow_unversioned)
    info = {"format": "tflite", "interpreter": classifier.interpreter_name, "input_dtype": classifier.input_dtype,
            "flip_average": flip, **classifier.model_id}
    return classifier.predict, info


def load_predictor(model: str | Path, threads: int = 1, interpreter: str | None = None, flip: bool = False,
                   allow_unversioned: bool = False):
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    if path.suffix == ".keras":
        return keras_predictor(path, flip)
    if path.suffix == ".tflite":
        return tflite_predictor(path, threads, interpreter, flip, allow_unversioned)
    raise ValueError(f"{path}: expected a .keras or .tflite model")


def predict_all(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int,
                progress: bool = True) -> tuple[np.ndarray, float]:
    """Probabilities for every face and the faces per second of the prediction calls alone."""
    from tqdm import tqdm

    outputs, spent = [], 0.0
    with tqdm(total=len(x), unit="face", desc="evaluate", disable=not progress, leave=False) as bar:
        for start in range(0, len(x), batch_size):
            batch = faces.normalise(x[start:start + batch_size])
            began = time.perf_counter()
            outputs.append(predict(batch))
            spent += time.perf_counter() - began
            bar.update(len(batch))
    return np.concatenate(outputs), (len(x) / spent if spent else 0.0)


def evaluate(model: str | Path, data_dir: str | Path, split: str | None = None, batch_size: int = 32,
             threads: int = 1, interpreter: str | None = None, progress: bool = True, flip: bool = False,
             allow_unversioned: bool = False) -> dict:
    """``flip``: each face's probabilities averaged with its mirror image's, as the agent does by default."""
    dataset = datasets.load(data_dir, split)
    predict, info = load_predictor(model, threads, interpreter, flip, allow_unversioned)
    probabilities, faces_per_second = predict_all(predict, dataset.x, batch_size, progress)
    summary = metrics.summarise(dataset.y, probabilities.argmax(axis=1))
    summary.update({"model": str(model), "data": str(data_dir), "faces_per_second": round(faces_per_second, 1),
                    "batch_size": batch_size, "threads": threads, **info})
    return summary
