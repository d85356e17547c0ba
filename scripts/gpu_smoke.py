"""Exit 0 only if Keras, on the backend KERAS_BACKEND names, trains a step on a GPU (train_on_gpu.sh).

Set GPU_REQUIRE=0 to accept a CPU (rehearsing the script on a machine without a GPU).
"""

import os
import sys

import keras
import numpy as np

backend = keras.backend.backend()
if backend == "jax":
    import jax

    device = jax.default_backend()
elif backend == "torch":
    import torch

    device = "gpu" if torch.cuda.is_available() else "cpu"
else:
    device = "unknown"
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
model.compile(optimizer="adam", loss="mse")
model.fit(np.zeros((8, 4), "float32"), np.zeros((8, 2), "float32"), verbose=0)
print(f"gpu_smoke: keras {keras.__version__} trains on {backend}, device {device}", flush=True)
sys.exit(0 if device == "gpu" or os.environ.get("GPU_REQUIRE") == "0" else 1)
