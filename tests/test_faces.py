"""Golden values for the one face-crop contract (core/faces)."""

import cv2
import numpy as np
import pytest

from emo7ion.core import faces


def block_frame(size: int = 96) -> np.ndarray:
    """frame[y, x] = x//2 + 2*(y//2): every 2x2 block is constant, so a 2x area downscale is exact."""
    ys, xs = np.mgrid[0:size, 0:size]
    return (xs // 2 + 2 * (ys // 2)).astype(np.uint8)


def test_downscale_crop_golden_values():
    crop = faces.crop_face(block_frame(), (0, 0, 96, 96), margin=0.0)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    i, j = np.mgrid[0:48, 0:48]
    np.testing.assert_array_equal(crop, (j + 2 * i).astype(np.uint8))
    assert crop[0, 0] == 0 and crop[0, 47] == 47 and crop[47, 0] == 94 and crop[47, 47] == 141


def test_margin_makes_a_centred_square():
    # A 48x40 box grown by 25% of its longer side each way: side 72, centred on (48, 44).
    assert faces.square_box((24, 24, 48, 40), 0.25, 200, 200) == (12, 8, 72)
    assert faces.square_box((10, 10, 20, 20), 0.0, 200, 200) == (10, 10, 20)
    with pytest.raises(ValueError, match="no area"):
        faces.square_box((0, 0, 0, 10), 0.1, 100, 100)


def test_bgr_to_gray_matches_opencv():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    ours = faces.to_gray(bgr).astype(int)
    theirs = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(ours - theirs).max() <= 1
    assert faces.to_gray(np.array([[[10, 20, 30]]], np.uint8))[0, 0] == 22  # 0.114*10 + 0.587*20 + 0.299*30


def test_box_past_the_border_replicates_edge_pixels():
    frame = np.zeros((60, 60), np.uint8)
    frame[:, 0] = 200  # the left column is bright
    crop = faces.crop_face(frame, (-30, 0, 60, 60), margin=0.0)  # half the box is outside on the left
    assert crop.shape == (48, 48)
    assert (crop[:, :20] >= 199).all()  # the outside half repeats the bright edge column
    assert (crop[:, 30:] == 0).all()


def test_normalise_scales_to_unit_range_with_channel():
    batch = np.array([np.zeros((48, 48)), np.full((48, 48), 255)], np.uint8)
    x = faces.normalise(batch)
    assert x.shape == (2, 48, 48, 1) and x.dtype == np.float32
    assert x[0].max() == 0.0 and x[1].min() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="48x48"):
        faces.normalise(np.zeros((2, 40, 40), np.uint8))


def test_prepare_faces_batches_every_box():
    frame = cv2.cvtColor(block_frame(), cv2.COLOR_GRAY2BGR)
    batch = faces.prepare_faces(frame, [(0, 0, 96, 96), (10, 10, 30, 30)], margin=0.0)
    assert batch.shape == (2, 48, 48, 1)
    assert batch[0, 47, 47, 0] == pytest.approx(141 / 255)
    assert faces.prepare_faces(frame, []).shape == (0, 48, 48, 1)
