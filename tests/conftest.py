"""Shared fixtures: a tiny synthetic FER-style dataset whose classes a CNN can learn in one epoch, a model
trained and converted on it once per test session, and a live aggregator. Plain helpers are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import LiveAggregator, tiny_run_config, write_split  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``<root>/train`` (40 faces a class) and ``<root>/val`` (12 a class)."""
    root = tmp_path_factory.mktemp("tiny-fer")
    write_split(root / "train", 40, seed=1)
    write_split(root / "val", 12, seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """An edge model trained for two epochs on the tiny data (a real Keras training run); its run folder
    (checkpoint, state, history) is ``tiny_model.parent``."""
    from emo7ion.training.train import train

    out = tmp_path_factory.mktemp("tiny-run")
    summary = train(tiny_run_config(tiny_data, out))
    return Path(summary["model"])


@pytest.fixture(scope="session")
def converted(tiny_model, tiny_data, tmp_path_factory) -> dict:
    """Every TFLite variant of the tiny model, made by the real converter, with its report."""
    from emo7ion.converter.convert import convert

    out = tmp_path_factory.mktemp("tiny-convert") / "out"
    report = convert(tiny_model, tiny_data, out, calibration=70, max_drop=100.0, progress=False)
    return {"out": out, "report": report, "stem": tiny_model.stem}


@pytest.fixture
def short_converter(monkeypatch):
    """The real converter limited to the two variants its parity check reads (float32, int8) and to short
    speed runs. For tests of what surrounds a conversion (a broken calibration, a model trained on another
    backend): the four variants and their speed figures are the ``converted`` fixture's to prove."""
    from emo7ion.converter import parity, variants

    measure = parity.faces_per_second
    monkeypatch.setattr(variants, "VARIANTS", ("float32", "int8"))
    monkeypatch.setattr(parity, "faces_per_second", lambda predict, faces, batch, **_: measure(
        predict, faces, batch, min_faces=2 * batch, min_seconds=0.0))


@pytest.fixture
def live_aggregator(tmp_path):
    live = LiveAggregator(tmp_path)
    yield live
    live.close()
