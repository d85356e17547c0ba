"""Detector framing in the augmenter: a training face is cut as the device's crop contract cuts a detector box."""

import numpy as np
import pytest

from emo7ion.core import faces
from emo7ion.training.augment import AugmentSpec, DetectorFraming, affine_matrices, augment_batch

STILL = dict(flip=False, rotation_degrees=0.0, shift=0.0, zoom=0.0, erase_probability=0.0)


def smooth_face() -> np.ndarray:
    """A low-frequency uint8 image: interpolation methods differ on it by a grey level or two, not by features."""
    yy, xx = np.mgrid[0:48, 0:48]
    image = 0.5 + 0.3 * np.sin(xx / 5.0 + 0.3) * np.cos(yy / 7.0) + 0.004 * xx
    return np.round(255 * image).astype(np.uint8)


def fixed(width, height, cx=0.0, cy=0.0, margin=0.1) -> DetectorFraming:
    """A framing whose every box is the same one (no spread)."""
    return DetectorFraming(width=(width, 0.0), height=(height, 0.0), centre_x=(cx, 0.0), centre_y=(cy, 0.0),
                           margin=margin)


@pytest.mark.parametrize("pixel_box, margin", [((12, 12, 24, 24), 0.0), ((16, 7, 20, 30), 0.1),
                                               ((6, 1.5, 36, 45), 0.1)])
def test_a_fixed_box_gives_the_crop_contract_s_crop(pixel_box, margin):
    """The augmenter's crop of a known box is core.faces.crop_face's crop of it, within interpolation. The boxes
    are chosen so the contract's square falls on whole pixels (crop_face rounds it; on a 48 px frame half a
    pixel shows); the last one reaches past the frame, where the device replicates edges and the augmenter
    reflects, so only its interior is compared."""
    x, y, w, h = (v / 48 for v in pixel_box)
    face = smooth_face()
    framing = fixed(w, h, x + w / 2 - 0.5, y + h / 2 - 0.5, margin)
    out = augment_batch(face[None, :, :, None] / 255.0, np.random.default_rng(0),
                        AugmentSpec(**STILL, framing=framing))[0, :, :, 0]
    device = faces.crop_face(face, pixel_box, margin) / 255.0
    inner = (slice(4, 44), slice(4, 44))
    assert np.abs(out - device)[inner].mean() < 0.004 and np.abs(out - device)[inner].max() < 0.02
    plain = faces.resize_gray(face) / 255.0
    assert np.abs(out - plain)[inner].mean() > 0.03  # the framing did move the face


def test_the_square_grows_by_the_margin_around_the_longer_side():
    size = 48
    for margin in (0.0, 0.1, 0.2):
        m = affine_matrices(np.random.default_rng(1), 5, size, AugmentSpec(**STILL, framing=fixed(0.6, 0.8,
                                                                                                 margin=margin)))
        scale = np.hypot(m[:, 0, 0], m[:, 1, 0])
        np.testing.assert_allclose(scale, 1.0 / (0.8 * (1 + 2 * margin)))
        centre = np.array([23.5, 23.5])  # the frame's centre is the box's: it stays put
        np.testing.assert_allclose(np.einsum("nij,j->ni", m[:, :, :2], centre) + m[:, :, 2], [centre] * 5,
                                   atol=1e-9)


def test_drawn_boxes_follow_the_measured_statistics():
    framing = DetectorFraming()
    boxes = framing.boxes(np.random.default_rng(2), 20000)
    w, h = boxes[:, 2], boxes[:, 3]
    cx, cy = boxes[:, 0] + w / 2 - 0.5, boxes[:, 1] + h / 2 - 0.5
    for values, (median, std) in ((w, framing.width), (h, framing.height), (cx, framing.centre_x),
                                  (cy, framing.centre_y)):
        assert np.median(values) == pytest.approx(median, abs=0.004)
        assert values.std() == pytest.approx(std * 0.96, rel=0.05)  # a normal clipped at 2 sigma: 0.96 sigma
        assert np.abs(values - median).max() <= framing.limit * std + 1e-9


def test_framing_comes_before_the_other_moves_and_leaves_their_draws_alone():
    """The same seed draws the same flips, turns and shifts with or without framing (runs stay comparable), and
    the framing's crop is applied to the frame before them."""
    rng_spec = dict(flip=True, rotation_degrees=10.0, shift=0.1, zoom=0.1, erase_probability=0.0)
    plain = affine_matrices(np.random.default_rng(3), 50, 48, AugmentSpec(**rng_spec))
    framing = fixed(0.78, 0.95, 0.02, -0.01)
    framed = affine_matrices(np.random.default_rng(3), 50, 48, AugmentSpec(**rng_spec, framing=framing))
    crop = framing.crop_matrices(framing.boxes(np.random.default_rng(0), 50), 48)
    expected = np.einsum("nij,njk->nik", plain, crop)
    np.testing.assert_allclose(framed, expected, atol=1e-9)


def test_framing_needs_the_single_resample():
    with pytest.raises(ValueError, match="single-resample"):
        AugmentSpec(framing=DetectorFraming(), single_resample=False)
