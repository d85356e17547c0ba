"""``emo7ion train``: fit a classifier on FER2013-style data with checkpoints that survive a stop.

Every epoch writes ``checkpoint.keras`` (model and optimizer) and ``state.json`` (epoch, history,
early-stopping counters) atomically, so ``--resume`` continues where a killed run left off with the
same learning rate. The best epoch on val is kept as ``best.keras`` and becomes the output model.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emo7ion.core import emotions
from emo7ion.training import data as datasets

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/edge"
    model: str = "edge"
    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_weights: bool = False
    patience: int = 12
    seed: int = 7
    subset: int | None = None
    hparams: dict = field(default_factory=dict)
    init_weights: str | None = None  # start from this .keras model's weights (fine-tuning, a second cycle)
    three_resamples: bool = False  # the pre-1.2 augmentation (rotate, shift, zoom each resample): ablation only
    framing: bool = False  # crop each face around a simulated detector box first (augment.DetectorFraming)
    time_budget_minutes: float | None = None  # end the cosine early enough to finish inside this (lent GPUs)

    def validate(self) -> None:
        checks = {"epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
                  "learning_rate": self.learning_rate > 0, "weight_decay": self.weight_decay >= 0,
                  "label_smoothing": 0 <= self.label_smoothing < 1, "patience": self.patience >= 1,
                  "warmup_epochs": self.warmup_epochs >= 0,
                  "subset": self.subset is None or self.subset >= 14,
                  "time_budget_minutes": self.time_budget_minutes is None or self.time_budget_minutes > 0}
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"bad training setting(s): {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")


def load_splits(config: TrainConfig):
    train = datasets.load(config.data, "train")
    val = datasets.load(config.data, "val")
    if config.subset:
        train = train.subset(config.subset, config.seed)
        val = val.subset(max(14, config.subset // 4), config.seed)
    log.info("train: %d faces %s", len(train), train.class_counts())
    log.info("val: %d faces %s", len(val), val.class_counts())
    return train, val


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Square-root balanced weights: help rare classes (disgust) without wrecking overall accuracy."""
    counts = np.bincount(labels, minlength=emotions.NUM_CLASSES).astype(float)
    weights = np.sqrt(counts.sum() / (emotions.NUM_CLASSES * np.maximum(counts, 1)))
    return {i: float(w / weights.mean()) for i, w in enumerate(weights)}


def make_datasets(train, val, config: TrainConfig, first_epoch: int = 0):
    """Augmented, reshuffled training batches and plain val batches, on any Keras backend."""
    from emo7ion.training.augment import AugmentSpec, DetectorFraming
    from emo7ion.training.batches import face_batches

    spec = AugmentSpec(single_resample=not config.three_resamples,
                       framing=DetectorFraming() if config.framing else None)
    train_batches = face_batches(train.x, train.y, config.batch_size, seed=config.seed, augment=spec, shuffle=True,
                                 first_epoch=first_epoch)
    val_batches = face_batches(val.x, val.y, 256)
    return train_batches, val_batches


def compile_model(model, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    from emo7ion.training.schedule import WarmupCosine

    schedule = WarmupCosine(config.learning_rate, total_steps=steps_per_epoch * config.epochs,
                            warmup_steps=steps_per_epoch * config.warmup_epochs)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def _save_model(model, path: Path, with_optimizer: bool = True) -> None:
    """Atomic save; without the optimizer the file loads anywhere Keras does, no custom objects needed."""
    if not with_optimizer:
        model = inference_copy(model)
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def inference_copy(model):
    """The same architecture and weights, uncompiled: what ships, converts and loads on any backend."""
    import keras

    fresh = keras.Model.from_config(model.get_config())
    fresh.set_weights(model.get_weights())
    return fresh


def export_model(source: str | Path, target: str | Path) -> None:
    """Re-save a training checkpoint (optimizer and schedule inside) as a plain inference model."""
    import keras

    from emo7ion.training import schedule  # noqa: F401  registers WarmupCosine for loading

    _save_model(keras.models.load_model(source), Path(target), with_optimizer=False)


def retarget_schedule(model, steps_per_epoch: int, epochs: int) -> None:
    """Stretch or shorten a resumed run's cosine to end at ``epochs``: a run that will not fit its time
    can still anneal fully instead of being cut off at a high learning rate."""
    from emo7ion.training.schedule import WarmupCosine

    old = model.optimizer._learning_rate  # noqa: SLF001  the schedule object itself, not its current value
    if not isinstance(old, WarmupCosine):
        raise ValueError("this checkpoint's learning rate is not a warm-up + cosine schedule; cannot change --epochs")
    if epochs * steps_per_epoch <= int(model.optimizer.iterations):
        raise ValueError(f"--epochs {epochs} is not beyond the {int(model.optimizer.iterations) // steps_per_epoch} "
                         "epochs this run has already done")
    model.optimizer.learning_rate = WarmupCosine(old.peak, total_steps=steps_per_epoch * epochs,
                                                 warmup_steps=old.warmup_steps, floor=old.floor)


def _deadline(config: TrainConfig, state: RunState, steps_per_epoch: int, started: float):
    from emo7ion.training.deadline import deadline_callback

    def record(epochs: int) -> None:
        state.config["epochs"] = epochs
        state.save()

    return deadline_callback(config.time_budget_minutes * 60.0, started, target=int(state.config["epochs"]),
                             most=config.epochs,
                             retarget=lambda model, epochs: retarget_schedule(model, steps_per_epoch, epochs),
                             on_change=record)


class RunState:
    """What a run must remember across a restart; written after every epoch."""

    def __init__(self, out: Path, config: TrainConfig, hparams: dict):
        self.path = out / "state.json"
        self.epoch = 0
        self.best = -1.0
        self.best_epoch = 0
        self.wait = 0
        self.history: dict[str, list[float]] = {}
        self.config = asdict(config)
        self.hparams = hparams

    @classmethod
    def load(cls, out: Path) -> RunState:
        raw = json.loads((out / "state.json").read_text())
        state = cls.__new__(cls)
        state.path = out / "state.json"
        state.__dict__.update({k: raw[k] for k in ("epoch", "best", "best_epoch", "wait", "history",
                                                   "config", "hparams")})
        return state

    def save(self) -> None:
        _write_json(self.path, {k: v for k, v in self.__dict__.items() if k != "path"})


def _checkpoint_callback(out: Path, state: RunState, patience: int):
    import keras

    class Checkpoint(keras.callbacks.Callback):
        """Saves model+optimizer each epoch, keeps the best on val, and stops after ``patience``."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            for key, value in logs.items():
                state.history.setdefault(key, []).append(float(value))
            state.history.setdefault("learning_rate", []).append(
                float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            state.epoch = epoch + 1
            score = float(logs.get("val_accuracy", -1.0))
            if score > state.best:
                state.best, state.best_epoch, state.wait = score, epoch + 1, 0
                _save_model(self.model, out / "best.keras", with_optimizer=False)
            else:
                state.wait += 1
            _save_model(self.model, out / "checkpoint.keras")
            state.save()
            if state.wait >= patience:
                log.info("early stop: val accuracy has not improved for %d epochs", patience)
                self.model.stop_training = True

    return Checkpoint()


def train(config: TrainConfig, resume: bool = False, output: str | None = None) -> dict:
    """Fit, checkpointing each epoch; returns a summary with the output model's path and val accuracy."""
    config.validate()
    import keras

    from emo7ion.training import deadline, models

    started = deadline.clock()

    out = Path(config.out)
    if out.exists() and any(out.glob("checkpoint.keras")) and not resume:
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = load_splits(config)
    steps = int(np.ceil(len(train_set) / config.batch_size))

    if resume and (out / "checkpoint.keras").exists():
        from emo7ion.training import schedule  # noqa: F401  registers WarmupCosine for loading

        state = RunState.load(out)
        model = keras.models.load_model(out / "checkpoint.keras")
        log.info("resuming %s at epoch %d (best val accuracy %.4f)", out, state.epoch, state.best)
        if int(state.config.get("epochs", config.epochs)) != config.epochs:
            retarget_schedule(model, steps, config.epochs)
            log.info("the cosine now ends at epoch %d instead of %d", config.epochs, state.config["epochs"])
            state.config["epochs"] = config.epochs
    else:
        if resume:
            log.warning("nothing to resume in %s; starting a new run", out)
        model = models.build(config.model, config.hparams)
        if config.init_weights:
            source = keras.models.load_model(config.init_weights, compile=False)
            try:
                model.set_weights(source.get_weights())
            except ValueError as error:
                raise ValueError(f"{config.init_weights} does not fit the '{config.model}' model built from these "
                                 f"hyperparameters: {error}") from error
            log.info("starting from the weights of %s", config.init_weights)
        compile_model(model, config, steps)
        state = RunState(out, config, model.hparams)
        state.save()
    log.info("%s: %s", config.model, models.describe(model))

    if state.epoch < config.epochs and state.wait < config.patience:
        train_ds, val_ds = make_datasets(train_set, val_set, config, first_epoch=state.epoch)
        callbacks = [_checkpoint_callback(out, state, config.patience)]
        if config.time_budget_minutes:
            callbacks.append(_deadline(config, state, steps, started))
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=state.epoch,
                  class_weight=class_weights(train_set.y) if config.class_weights else None,
                  callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)

    final = Path(output) if output else out / "model.keras"
    final.parent.mkdir(parents=True, exist_ok=True)
    export_model(out / "best.keras", final)
    _write_json(out / "history.json", state.history)
    plot_history(state.history, out / "curves.png")
    summary = {"model": str(final), "backend": keras.backend.backend(),
               "best_val_accuracy": state.best, "best_epoch": state.best_epoch,
               "epochs_run": state.epoch, "epochs_planned": int(state.config["epochs"]),
               "hparams": state.hparams, **models.describe(model)}
    _write_json(out / "summary.json", summary)
    return summary


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", ax_loss), ("accuracy", ax_acc)):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                axis.plot(range(1, len(values) + 1), values, style, label=prefix + key)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
