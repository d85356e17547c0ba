"""Proves a converted model against its Keras source: accuracy, top-1 agreement, the largest
probability difference, file size and single-thread faces per second at batch 1 and 32."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emo7ion.core.runtime import EmotionClassifier


def faces_per_second(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, batch: int,
                     min_faces: int = 256, min_seconds: float = 1.0) -> float:
    """Steady-state throughput: one warm-up call, then whole batches until both minimums are met."""
    predict(faces[:batch])
    done, began, start = 0, time.perf_counter(), 0
    while done < min_faces or time.perf_counter() - began < min_seconds:
        if start + batch > len(faces):
            start = 0
        predict(faces[start:start + batch])
        done += batch
        start += batch
    return done / (time.perf_counter() - began)


def prove(path: Path, val_x: np.ndarray, val_y: np.ndarray, reference: np.ndarray, progress=None) -> dict:
    """Figures of one ``.tflite`` file on the val faces, against the Keras probabilities ``reference``."""
    classifier = EmotionClassifier(path, num_threads=1, max_batch=256)
    probabilities = []
    for start in range(0, len(val_x), 256):
        probabilities.append(classifier.predict(val_x[start:start + 256]))
        if progress is not None:
            progress.update(min(256, len(val_x) - start))
    probabilities = np.concatenate(probabilities)
    predicted = probabilities.argmax(axis=1)
    speed_faces = val_x[:512]
    return {
        "file": path.name,
        "accuracy": round(float((predicted == val_y).mean()), 4),
        "agreement": round(float((predicted == reference.argmax(axis=1)).mean()), 4),
        "max_prob_diff": round(float(np.abs(probabilities - reference).max()), 4),
        "size_bytes": path.stat().st_size,
        "input_dtype": classifier.input_dtype,
        "faces_per_second_b1": round(faces_per_second(classifier.predict, speed_faces, 1), 1),
        "faces_per_second_b32": round(faces_per_second(classifier.predict, speed_faces, 32), 1),
        "interpreter": classifier.interpreter_name,
    }
