"""The augmenter: one composed affine per face, the geometry it promises, and batches that any backend reads."""

import numpy as np
import pytest

from emo7ion.training.augment import AugmentSpec, affine_matrices, augment_batch

STILL = dict(flip=False, rotation_degrees=0.0, shift=0.0, zoom=0.0, erase_probability=0.0)


def smooth_faces(n: int = 8) -> np.ndarray:
    """Low-frequency images, where one resample and three differ only by interpolation blur."""
    yy, xx = np.mgrid[0:48, 0:48]
    image = 0.5 + 0.3 * np.sin(xx / 5.0 + 0.3) * np.cos(yy / 7.0) + 0.004 * xx
    return np.repeat(image[None, :, :, None], n, axis=0).astype(np.float32)


def test_no_moves_is_the_identity_and_the_input_is_untouched():
    x = np.random.default_rng(0).random((6, 48, 48, 1), dtype=np.float32)
    before = x.copy()
    out = augment_batch(x, np.random.default_rng(1), AugmentSpec(**STILL))
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(x, before)


def test_flip_alone_mirrors_about_half_the_faces_exactly():
    x = np.random.default_rng(0).random((200, 48, 48, 1), dtype=np.float32)
    out = augment_batch(x, np.random.default_rng(2), AugmentSpec(**{**STILL, "flip": True}))
    mirrored = [np.allclose(o, f[:, ::-1], atol=1e-6) for o, f in zip(out, x)]
    same = [np.allclose(o, f) for o, f in zip(out, x)]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 60 < sum(mirrored) < 140


def test_matrices_stay_within_the_spec():
    spec = AugmentSpec(rotation_degrees=10, shift=0.1, zoom=0.1)
    m = affine_matrices(np.random.default_rng(3), 2000, 48, spec)
    scale = np.hypot(m[:, 0, 0], m[:, 1, 0])
    assert 0.9 - 1e-9 <= scale.min() and scale.max() <= 1.1 + 1e-9
    angle = np.degrees(np.arctan2(m[:, 1, 0] * np.sign(np.linalg.det(m[:, :, :2])), m[:, 1, 1]))
    assert np.abs(angle).max() <= 10 + 1e-6
    centre = np.array([23.5, 23.5])
    moved = np.einsum("nij,j->ni", m[:, :, :2], centre) + m[:, :, 2] - centre  # where the centre goes
    assert np.abs(moved).max() <= 4.8 + 1e-6 and np.abs(moved).max() > 4.0


def test_one_resample_is_the_same_move_as_three_but_sharper():
    x = smooth_faces()
    spec = dict(flip=True, rotation_degrees=10, shift=0.1, zoom=0.1, erase_probability=0.0)
    once = augment_batch(x, np.random.default_rng(5), AugmentSpec(**spec))
    thrice = augment_batch(x, np.random.default_rng(5), AugmentSpec(**spec, single_resample=False))
    inner = (slice(None), slice(10, 38), slice(10, 38))
    assert np.abs(once - thrice)[inner].max() < 0.02  # the same geometry
    assert np.abs(once - x)[inner].mean() > 0.03  # and it did move the faces

    noise = np.random.default_rng(6).random((32, 48, 48, 1), dtype=np.float32)
    still = dict(STILL, rotation_degrees=10, zoom=0.1)
    sharp = augment_batch(noise, np.random.default_rng(7), AugmentSpec(**still)).std()
    blurred = augment_batch(noise, np.random.default_rng(7), AugmentSpec(**still, single_resample=False)).std()
    assert sharp > blurred * 1.1  # each extra interpolation smooths the pixels away


def test_random_erasing_replaces_one_rectangle_in_about_half():
    x = np.zeros((400, 48, 48, 1), np.float32)
    out = augment_batch(x, np.random.default_rng(8), AugmentSpec(**{**STILL, "erase_probability": 0.5}))
    touched = (out != 0).reshape(400, -1)
    share = touched.any(axis=1).mean()
    assert 0.4 < share < 0.6
    areas = touched.sum(axis=1)[touched.any(axis=1)] / (48 * 48)
    assert areas.max() <= 0.2 and areas.min() >= 0.005


def test_batches_shuffle_per_epoch_reproducibly():
    pytest.importorskip("keras")
    from emo7ion.training.batches import face_batches

    x = np.arange(100, dtype=np.uint8)[:, None, None].repeat(48, 1).repeat(48, 2)
    y = np.arange(100) % 7
    batches = face_batches(x, y, 32, seed=1, shuffle=True)
    assert len(batches) == 4
    images, labels = batches[0]
    assert images.shape == (32, 48, 48, 1) and images.dtype == np.float32 and labels.shape == (32, 7)
    first = np.concatenate([batches[i][0][:, 0, 0, 0] for i in range(4)])
    assert sorted(np.round(first * 255).astype(int)) == list(range(100))  # every face once an epoch
    batches.on_epoch_end()
    second = np.concatenate([batches[i][0][:, 0, 0, 0] for i in range(4)])
    assert not np.array_equal(first, second)
    resumed = face_batches(x, y, 32, seed=1, shuffle=True, first_epoch=1)
    np.testing.assert_array_equal(np.concatenate([resumed[i][0][:, 0, 0, 0] for i in range(4)]), second)
