"""Fit a run's learning-rate schedule into a wall-clock budget.

A lent GPU machine gives a fixed number of minutes and nobody knows beforehand how long an epoch takes
there (compile time, other runs sharing the chip). Cutting a run off when the time is up leaves it at a
high learning rate, far from its best; instead, after every epoch this measures how long epochs take
and moves the end of the cosine to the last epoch that fits, so the run always anneals fully.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SAFETY = 0.95  # plan to use this share of what is left: a re-trace and the final save also take time
MIN_CHANGE = 0.05  # of the planned epochs (at least 2): smaller corrections are not worth a re-trace
GROW_UNTIL = 0.5  # the end may move later only in the first half of the run (later, the cosine is committed)
TYPICAL_OF = 5  # clean epochs the estimate takes the median of


def clock() -> float:
    """Seconds on a monotonic clock (one name, so a test can move time)."""
    return time.monotonic()


def epochs_that_fit(done: int, seconds_left: float, epoch_seconds: float, most: int) -> int:
    """The last epoch that ends inside the budget, at most ``most``; ``done`` itself when none more fits."""
    if epoch_seconds <= 0:
        return most
    return max(done, min(most, done + math.floor(SAFETY * seconds_left / epoch_seconds)))


def deadline_callback(budget_seconds: float, started: float, target: int, most: int,
                      retarget: Callable[[object, int], None], on_change: Callable[[int], None]):
    """A Keras callback that keeps the schedule's end (``target`` epochs) inside the budget.

    ``started`` is the ``clock()`` at which the budget began (data loading counts);
    ``retarget(model, epochs)`` moves the schedule's end; ``on_change(epochs)`` records it (run state).
    Epochs that compile (the first) or re-trace (the one after a change) are left out of the estimate:
    counting them made each correction look like a slowdown and call for the next (seen on an H100).
    """
    import keras

    class Deadline(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.target = target
            self.durations: list[float] = []  # clean epochs only: no compilation or re-trace inside
            self.trace_s = 0.0  # how long the last epoch that compiled or re-traced the step took
            self.last = None
            self.tracing = True  # the next epoch compiles (the first) or re-traces (after a change)

        def on_epoch_begin(self, epoch, logs=None):
            if self.last is None:
                self.last = clock()

        def on_epoch_end(self, epoch, logs=None):
            now = clock()
            if self.tracing:
                self.trace_s = now - self.last
            else:
                self.durations.append(now - self.last)
            self.last, self.tracing = now, False
            done = epoch + 1
            if done >= self.target:
                self.model.stop_training = True
                return
            if not self.durations:
                return
            typical = statistics.median(self.durations[-TYPICAL_OF:])
            left = budget_seconds - (now - started)
            fit = epochs_that_fit(done, left, typical, most)
            if fit <= done:
                self._stop(left, typical, done)
                return
            step = max(2, math.ceil(MIN_CHANGE * self.target))
            shrink = fit <= self.target - step or (fit < self.target and fit == done + 1)
            grow = fit >= self.target + 2 * step and done < GROW_UNTIL * self.target
            if not (shrink or grow):
                return
            # The correction re-traces the step, which costs about what the last trace cost beyond a plain
            # epoch: plan for it, or the re-trace itself overruns the new plan and calls for the next one.
            fit = epochs_that_fit(done, left - max(0.0, self.trace_s - typical), typical, most)
            if fit <= done:
                self._stop(left, typical, done)
                return
            if fit == self.target or (grow and fit < self.target):
                return
            log.info("time budget: epochs take %.1f s, %.0f s left; the schedule now ends at epoch %d "
                     "instead of %d", typical, left, fit, self.target)
            retarget(self.model, fit)
            self.model.make_train_function(force=True)  # the step was traced with the old schedule's numbers
            self.target, self.tracing = fit, True
            on_change(fit)

        def _stop(self, left: float, typical: float, done: int) -> None:
            log.warning("time budget: %.0f s left, an epoch takes %.1f s; stopping after epoch %d of %d",
                        left, typical, done, self.target)
            self.model.stop_training = True

    return Deadline()
