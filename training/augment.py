"""Training-time augmentation as a tf.data stage: flips, small affine moves, random erasing.

It lives outside the model so the saved and converted models hold no training-only layers.
"""

from __future__ import annotations


def make_augmenter(seed: int, shift: float = 0.1, rotation_degrees: float = 10.0, zoom: float = 0.1,
                   erase_probability: float = 0.5):
    """A function batch -> batch for ``dataset.map``; images float32 (B, 48, 48, 1) in [0, 1]."""
    import keras
    import tensorflow as tf

    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    rotate = keras.layers.RandomRotation(rotation_degrees / 360.0, fill_mode="reflect", seed=seed + 1)
    translate = keras.layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed + 2)
    scale = keras.layers.RandomZoom((-zoom, zoom), fill_mode="reflect", seed=seed + 3)
    generator = tf.random.Generator.from_seed(seed + 4)

    def random_erase(images):
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        area = generator.uniform([batch], 0.02, 0.15) * hf * wf
        aspect = tf.exp(generator.uniform([batch], -1.0, 1.0))
        eh = tf.clip_by_value(tf.sqrt(area * aspect), 1.0, hf)
        ew = tf.clip_by_value(tf.sqrt(area / aspect), 1.0, wf)
        y0 = generator.uniform([batch]) * (hf - eh)
        x0 = generator.uniform([batch]) * (wf - ew)
        rows = tf.range(hf)[tf.newaxis, :, tf.newaxis]
        cols = tf.range(wf)[tf.newaxis, tf.newaxis, :]
        inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
                  & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
        chosen = generator.uniform([batch]) < erase_probability
        mask = tf.logical_and(inside, chosen[:, None, None])[..., tf.newaxis]
        noise = generator.uniform(tf.shape(images))
        return tf.where(mask, noise, images)

    def augment(images, labels):
        images = flip(images, training=True)
        images = rotate(images, training=True)
        images = translate(images, training=True)
        images = scale(images, training=True)
        images = tf.clip_by_value(images, 0.0, 1.0)
        return random_erase(images), labels

    return augment
