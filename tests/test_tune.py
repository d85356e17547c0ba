"""A two-trial keras-tuner search, stopped after one trial and resumed."""

import json

from emo7ion.training.tune import read_hparams, tune


def test_tune_resumes_and_writes_best_hparams(tiny_data, tmp_path):
    out = tmp_path / "search"
    first = tune(str(tiny_data), str(out), algorithm="random", max_trials=1, epochs=1, batch_size=64)
    assert first["trials_completed"] == 1
    trial_dirs = sorted(p.name for p in (out / "edge-random").glob("trial_*"))
    assert len(trial_dirs) == 1

    second = tune(str(tiny_data), str(out), algorithm="random", max_trials=2, epochs=1, batch_size=64)
    assert second["trials_completed"] == 2  # the first trial was reloaded, one more was run
    assert len(list((out / "edge-random").glob("trial_*"))) == 2

    saved = json.loads((out / "best_hparams.json").read_text())
    assert saved["model"] == "edge" and 0.0 <= saved["val_accuracy"] <= 1.0
    model_name, hparams = read_hparams(out / "best_hparams.json")
    assert model_name == "edge" and {"block3_filters", "block4_filters", "learning_rate"} <= set(hparams)
