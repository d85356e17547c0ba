"""Training and validation batches as a ``keras.utils.PyDataset``: numpy in, any Keras backend out.

No tf.data on the training path, so the same run works on TensorFlow, JAX or PyTorch (a lent GPU
machine has no TensorFlow). Each epoch reshuffles with its own seeded generator, so a resumed run sees
the same order it would have seen.
"""

from __future__ import annotations

import numpy as np

from emo7ion.core import emotions, faces
from emo7ion.training.augment import AugmentSpec, augment_batch


def onehot(labels: np.ndarray) -> np.ndarray:
    return np.eye(emotions.NUM_CLASSES, dtype=np.float32)[labels]


def face_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0, augment: AugmentSpec | None = None,
                 shuffle: bool = False, first_epoch: int = 0):
    """A PyDataset over uint8 faces (N, 48, 48) and labels (N,); augmented and shuffled when asked."""
    import keras

    class FaceBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.x = faces.normalise(x)
            self.y = onehot(y)
            self.epoch = first_epoch
            self.order = self._order()

        def _order(self) -> np.ndarray:
            if not shuffle:
                return np.arange(len(self.y))
            return np.random.default_rng((seed, self.epoch)).permutation(len(self.y))

        def __len__(self) -> int:
            return int(np.ceil(len(self.y) / batch_size))

        def __getitem__(self, index: int):
            picks = self.order[index * batch_size:(index + 1) * batch_size]
            images = self.x[picks]
            if augment is not None:
                images = augment_batch(images, np.random.default_rng((seed, self.epoch, index)), augment)
            return images, self.y[picks]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

    return FaceBatches()
