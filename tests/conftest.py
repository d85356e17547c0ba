"""Shared fixtures: a tiny synthetic FER-style dataset whose classes a CNN can learn in one epoch, and a
model trained and converted on it once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emo7ion.core import emotions  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def synthetic_face(label_index: int, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 gray image whose class is a bright horizontal band at a class-specific height."""
    image = rng.integers(0, 60, size=(48, 48)).astype(np.uint8)
    top = 3 + 6 * label_index
    image[top:top + 4, 4:44] = rng.integers(200, 255)
    return image


def write_split(root: Path, per_class: int, seed: int) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    for index, label in enumerate(emotions.LABELS):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(folder / f"{label}_{i}.png"), synthetic_face(index, rng))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``<root>/train`` (40 faces a class) and ``<root>/val`` (12 a class)."""
    root = tmp_path_factory.mktemp("tiny-fer")
    write_split(root / "train", 40, seed=1)
    write_split(root / "val", 12, seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """An edge model trained for two epochs on the tiny data (a real Keras training run)."""
    from emo7ion.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-run")
    summary = train(TrainConfig(data=str(tiny_data), out=str(out), epochs=2, batch_size=16, warmup_epochs=0,
                                learning_rate=3e-3, patience=5, hparams={"bn_momentum": 0.9}))
    return Path(summary["model"])


@pytest.fixture(scope="session")
def converted(tiny_model, tiny_data, tmp_path_factory) -> dict:
    """Every TFLite variant of the tiny model, made by the real converter, with its report."""
    from emo7ion.converter.convert import convert

    out = tmp_path_factory.mktemp("tiny-convert") / "out"
    report = convert(tiny_model, tiny_data, out, calibration=70, max_drop=100.0, progress=False)
    return {"out": out, "report": report, "stem": tiny_model.stem}
