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
    """A 48x48 gray image whose class is its brightness (20 + 32 * class, give or take 8), which
    flips, shifts and zooms keep, so a CNN learns it in an epoch or two."""
    level = 20 + 32 * label_index
    return np.clip(level + rng.integers(-8, 9, size=(48, 48)), 0, 255).astype(np.uint8)


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
                                learning_rate=3e-3, patience=5, hparams={"bn_momentum": 0.5}))
    return Path(summary["model"])


@pytest.fixture(scope="session")
def converted(tiny_model, tiny_data, tmp_path_factory) -> dict:
    """Every TFLite variant of the tiny model, made by the real converter, with its report."""
    from emo7ion.converter.convert import convert

    out = tmp_path_factory.mktemp("tiny-convert") / "out"
    report = convert(tiny_model, tiny_data, out, calibration=70, max_drop=100.0, progress=False)
    return {"out": out, "report": report, "stem": tiny_model.stem}
