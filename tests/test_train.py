"""A real (tiny) training run: the session's two-epoch run (``tiny_model``), copied and resumed from its
checkpoint to four epochs, once for the resume and the cosine tests; its settings in ``tiny_run_config``."""

import json
import shutil
import zipfile

import keras
import numpy as np
import pytest

from emo7ion.training import schedule  # noqa: F401  registers the schedule for loading checkpoints
from emo7ion.training.train import TrainConfig, train
from helpers import tiny_run_config

STEPS = int(np.ceil(280 / 16))  # batches an epoch of the session's run: 280 faces, batch 16


@pytest.fixture(scope="module")
def resumed(tiny_model, tiny_data, tmp_path_factory):
    """A copy of the session's two-epoch run folder, resumed to four epochs; (folder, summary)."""
    out = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(tiny_model.parent, out)
    return out, train(tiny_run_config(tiny_data, out, epochs=4), resume=True)


def test_train_then_resume_from_the_checkpoint(tiny_model, tiny_data, resumed):
    first = tiny_model.parent
    assert json.loads((first / "summary.json").read_text())["epochs_run"] == 2
    assert int(keras.models.load_model(first / "checkpoint.keras").optimizer.iterations) == 2 * STEPS

    out, second = resumed
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_run_config(tiny_data, out, epochs=4))

    assert second["epochs_run"] == 4
    history = json.loads((out / "history.json").read_text())
    assert len(history["accuracy"]) == len(history["val_accuracy"]) == 4
    assert int(keras.models.load_model(out / "checkpoint.keras").optimizer.iterations) == 4 * STEPS
    assert (out / "curves.png").stat().st_size > 5000

    # The output model carries no optimizer: it loads anywhere without our custom objects.
    names = zipfile.ZipFile(out / "model.keras").namelist()
    assert "model.weights.h5" in names
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert getattr(model, "optimizer", None) is None
    assert max(history["val_accuracy"]) == pytest.approx(second["best_val_accuracy"])


def test_bad_settings_are_named(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="label_smoothing"):
        train(TrainConfig(data=str(tiny_data), out=str(tmp_path), label_smoothing=1.5))


def test_average_of_a_run_keeps_its_architecture(tiny_model, tiny_data, tmp_path):
    from emo7ion.training.average import average

    result = average([str(tiny_model), str(tiny_model)], str(tiny_data), str(tmp_path / "swa.keras"), progress=False)
    assert 0.0 <= result["val_accuracy"] <= 1.0
    averaged = keras.models.load_model(tmp_path / "swa.keras", compile=False)
    original = keras.models.load_model(tiny_model, compile=False)
    conv = [w for w in averaged.weights if "conv" in w.path and "kernel" in w.path]
    assert conv and np.allclose(np.asarray(conv[0]), np.asarray(original.get_layer("stem_conv").kernel))
    with pytest.raises(ValueError, match="at least two"):
        average([str(tiny_model)], str(tiny_data), str(tmp_path / "x.keras"), progress=False)


def test_resume_with_more_epochs_stretches_the_cosine(tiny_data, resumed):
    import math

    out, _ = resumed  # two epochs planned, resumed with four: the cosine now ends at the fourth
    history = json.loads((out / "history.json").read_text())
    peak = tiny_run_config(tiny_data, out).learning_rate
    expected = 1e-5 + 0.5 * (peak - 1e-5) * (1 + math.cos(math.pi * 3 * STEPS / (4 * STEPS)))
    assert history["learning_rate"][2] == pytest.approx(expected, rel=1e-4)
    assert history["learning_rate"][3] == pytest.approx(1e-5, rel=1e-3)
    assert json.loads((out / "state.json").read_text())["config"]["epochs"] == 4
    with pytest.raises(ValueError, match="already done"):
        train(tiny_run_config(tiny_data, out, epochs=3), resume=True)


def test_time_budget_ends_the_cosine_inside_the_budget(tiny_data, tmp_path, monkeypatch):
    """Epochs 'take' 10 s on a moved clock; 45 s of budget: after two epochs the schedule is re-fitted to
    end at epoch 4 of the 10 asked for, and the re-traced train step really follows the new cosine."""
    import itertools
    import math

    from emo7ion.training import deadline

    ticks = itertools.chain([0.0, 0.0], itertools.count(10.0, 10.0))
    monkeypatch.setattr(deadline, "clock", lambda: next(ticks))
    out = tmp_path / "run"
    config = TrainConfig(data=str(tiny_data), out=str(out), epochs=10, batch_size=32, warmup_epochs=0,
                         learning_rate=1e-3, patience=10, time_budget_minutes=0.75)
    summary = train(config)
    assert summary["epochs_run"] == summary["epochs_planned"] == 4
    history = json.loads((out / "history.json").read_text())
    expected = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 3 / 4))
    assert history["learning_rate"][2] == pytest.approx(expected, rel=1e-4)
    assert history["learning_rate"][3] == pytest.approx(1e-5, rel=1e-3)
    assert json.loads((out / "state.json").read_text())["config"]["epochs"] == 4


def test_epochs_that_fit():
    from emo7ion.training.deadline import epochs_that_fit

    assert epochs_that_fit(done=2, seconds_left=100, epoch_seconds=10, most=80) == 11  # 95% of 100 s
    assert epochs_that_fit(done=2, seconds_left=1000, epoch_seconds=10, most=40) == 40
    assert epochs_that_fit(done=5, seconds_left=-3, epoch_seconds=10, most=40) == 5  # none more: stop now
    with pytest.raises(ValueError, match="time_budget_minutes"):
        TrainConfig(data="x", time_budget_minutes=0).validate()


def drive_deadline(monkeypatch, budget: float, loading: float, epoch_seconds):
    """Run the time-budget callback over epochs whose lengths ``epoch_seconds(index, tracing)`` gives, on a
    moved clock; returns (the schedule ends it chose, epochs run, seconds used)."""
    import types

    from emo7ion.training import deadline

    now = {"t": loading}
    monkeypatch.setattr(deadline, "clock", lambda: now["t"])
    changes: list[int] = []
    model = types.SimpleNamespace(stop_training=False, make_train_function=lambda force: None)
    callback = deadline.deadline_callback(budget, 0.0, target=80, most=80,
                                          retarget=lambda _model, epochs: changes.append(epochs),
                                          on_change=lambda epochs: None)
    callback.set_model(model)
    callback.on_epoch_begin(0)
    for epoch in range(80):
        now["t"] += epoch_seconds(epoch, callback.tracing)
        callback.on_epoch_end(epoch)
        if model.stop_training:
            break
    return changes, epoch + 1, now["t"]


def test_a_retrace_does_not_read_as_a_slowdown(monkeypatch):
    """Epochs take 2 s, compiling and re-tracing 10 s and 6 s. The correction (80 -> 40 epochs in 100 s)
    plans for its own re-trace, and the re-traced epoch does not count as the new pace: counting it
    cascaded a run on an H100 from 68 planned epochs down to 27; not planning for it cost 8 corrections."""
    lengths = [10, 2, 6] + [2] * 77
    changes, epochs, used = drive_deadline(monkeypatch, 100.0, 0.0, lambda epoch, tracing: lengths[epoch])
    assert changes == [40]
    assert epochs == 40 and used <= 100


def test_noisy_epochs_settle_in_few_corrections(monkeypatch):
    """The H100 pattern: epochs of 2.4-2.9 s, compiling 20 s, each re-trace 8 s, 200 s for 80 epochs asked,
    25 s of it spent loading data. The plan settles in a couple of corrections (it took eight before
    re-traces were planned for) and the run ends inside its budget."""
    import random

    rng = random.Random(3)
    changes, epochs, used = drive_deadline(
        monkeypatch, 200.0, 25.0,
        lambda epoch, tracing: 20.0 if epoch == 0 else 8.0 if tracing else rng.uniform(2.4, 2.9))
    assert 1 <= len(changes) <= 2, changes  # the version before planned for none: 3 here, 8 on the H100
    assert epochs == changes[-1] and used <= 200.0
    assert epochs >= 50  # (200 - 25 - 20 - 8) s / 2.9 s: no epochs thrown away to over-caution
