"""``emo7ion average``: stochastic weight averaging of models of one run (Izmailov et al., 2018).

Models from the same basin (a run's checkpoints, or a second learning-rate cycle started from the
first) are averaged weight by weight; batch-norm statistics of the averaged network are then measured
afresh on the training faces, since averaging moving means and variances does not give the statistics
of the averaged weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emo7ion.core import faces
from emo7ion.training import data as datasets

log = logging.getLogger(__name__)


def average_weights(paths: list[Path]):
    import keras

    if len(paths) < 2:
        raise ValueError("averaging needs at least two models")
    loaded = [keras.models.load_model(p, compile=False) for p in paths]
    shapes = [[w.shape for w in m.get_weights()] for m in loaded]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("the models do not share one architecture")
    model = keras.Model.from_config(loaded[0].get_config())
    model.set_weights([np.mean(group, axis=0) for group in zip(*(m.get_weights() for m in loaded))])
    return model


def recompute_batch_norm(model, x: np.ndarray, batch_size: int = 128, progress: bool = True) -> None:
    """Exact averages of each batch-norm layer's batch statistics over ``x`` (cumulative momentum)."""
    import keras
    from tqdm import tqdm

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))
    original = [layer.momentum for layer in layers]
    batches = range(0, len(x), batch_size)
    for step, start in enumerate(tqdm(batches, desc="batch-norm statistics", disable=not progress), start=1):
        for layer in layers:
            layer.momentum = (step - 1) / step  # moving = running mean of the per-batch statistics
        model(faces.normalise(x[start:start + batch_size]), training=True)
    for layer, momentum in zip(layers, original):
        layer.momentum = momentum


def average(paths: list[str], data: str, out: str, progress: bool = True) -> dict:
    from emo7ion.training.metrics import summarise

    model = average_weights([Path(p) for p in paths])
    train = datasets.load(data, "train")
    recompute_batch_norm(model, train.x, progress=progress)
    val = datasets.load(data, "val")
    x = faces.normalise(val.x)
    predicted = np.concatenate([np.asarray(model(x[i:i + 512], training=False)) for i in range(0, len(x), 512)])
    summary = summarise(val.y, predicted.argmax(axis=1))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    log.info("averaged %d models into %s: val accuracy %.4f", len(paths), out, summary["accuracy"])
    return {"model": out, "sources": paths, "val_accuracy": summary["accuracy"], "macro_f1": summary["macro_f1"]}
