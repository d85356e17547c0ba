"""``emo7ion tune``: keras-tuner search over a model's hyperparameters that survives being stopped.

The tuner keeps every finished trial in its directory; running the same command again reloads them
and carries on, so a stopped 15-hour search loses at most the trial in progress. The best set is
written as JSON that ``emo7ion train --hparams FILE`` takes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from emo7ion.training.train import TrainConfig, load_splits, make_datasets

log = logging.getLogger(__name__)

ALGORITHMS = ("bayesian", "hyperband", "random")


def make_hypermodel(model_name: str, steps_per_epoch: int, epochs: int, label_smoothing: float):
    import keras

    from emo7ion.training import models
    from emo7ion.training.schedule import WarmupCosine

    def build(hp):
        model = models.build(model_name, hp)
        learning_rate = hp.Choice("learning_rate", [1e-3, 2e-3, 4e-3], default=2e-3)
        schedule = WarmupCosine(learning_rate, total_steps=steps_per_epoch * epochs, warmup_steps=steps_per_epoch)
        model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                      metrics=["accuracy"])
        return model

    return build


def make_tuner(build, algorithm: str, directory: Path, project: str, max_trials: int, epochs: int, seed: int):
    import keras_tuner as kt

    common = {"objective": "val_accuracy", "directory": str(directory), "project_name": project,
              "overwrite": False, "seed": seed}
    if algorithm == "bayesian":
        return kt.BayesianOptimization(build, max_trials=max_trials, **common)
    if algorithm == "random":
        return kt.RandomSearch(build, max_trials=max_trials, **common)
    if algorithm == "hyperband":
        return kt.Hyperband(build, max_epochs=epochs, factor=3, max_retries_per_trial=0, **common)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")


def tune(data: str, out: str, model: str = "edge", algorithm: str = "bayesian", max_trials: int = 20,
         epochs: int = 12, subset: int | None = None, batch_size: int = 64, seed: int = 7,
         hparams_file: str | None = None) -> dict:
    """Run (or resume) the search in ``out``; returns and writes the best hyperparameters."""
    import keras

    from emo7ion.training import schedule  # noqa: F401  registers WarmupCosine for reloading trials

    if max_trials < 1 or epochs < 1:
        raise ValueError(f"--max-trials ({max_trials}) and --epochs ({epochs}) must be at least 1")
    config = TrainConfig(data=data, out=out, model=model, epochs=epochs, batch_size=batch_size, subset=subset,
                         seed=seed)
    keras.utils.set_random_seed(seed)
    train_set, val_set = load_splits(config)
    train_ds, val_ds = make_datasets(train_set, val_set, config)
    steps = int(np.ceil(len(train_set) / batch_size))
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    build = make_hypermodel(model, steps, epochs, config.label_smoothing)
    tuner = make_tuner(build, algorithm, directory, f"{model}-{algorithm}", max_trials, epochs, seed)
    done = sum(1 for t in tuner.oracle.trials.values() if t.status == "COMPLETED")
    if done:
        log.info("resuming search in %s: %d trial(s) already complete", directory, done)
    tuner.search(train_ds, validation_data=val_ds, epochs=epochs, verbose=2,
                 callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=4)])
    best_trial = tuner.oracle.get_best_trials(1)[0]
    result = {"model": model, "algorithm": algorithm, "val_accuracy": best_trial.score,
              "trials_completed": sum(1 for t in tuner.oracle.trials.values() if t.status == "COMPLETED"),
              "epochs": epochs, "subset": subset, "hparams": dict(best_trial.hyperparameters.values)}
    target = Path(hparams_file) if hparams_file else directory / "best_hparams.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, target)
    result["hparams_file"] = str(target)
    return result


def read_hparams(path: str) -> tuple[str | None, dict]:
    """(model name or None, hyperparameters) from a file ``tune`` wrote, or a bare {name: value} JSON."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise ValueError(f"hyperparameter file {path} not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"hyperparameter file {path} is not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"hyperparameter file {path} must hold a JSON object")
    if "hparams" in raw:
        return raw.get("model"), dict(raw["hparams"])
    return None, raw
