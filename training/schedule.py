"""Learning-rate schedule: linear warm-up then cosine decay, saved inside the checkpoint.

Because the schedule is a function of the optimizer's step count, a resumed run continues at exactly
the learning rate it stopped at.
"""

from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="emo7ion")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak: float, total_steps: int, warmup_steps: int, floor: float = 1e-5):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.floor = float(floor)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(1.0, float(self.warmup_steps))
        progress = ops.clip((step - self.warmup_steps) / max(1.0, float(self.total_steps - self.warmup_steps)),
                            0.0, 1.0)
        cosine = self.floor + 0.5 * (self.peak - self.floor) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "floor": self.floor}
