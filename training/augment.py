"""Training-time augmentation in numpy and OpenCV: one composed affine per face, resampled once.

Flip, rotation, shift and zoom are folded into a single 2x3 matrix per face and applied with one
``cv2.warpAffine``, so a training face is interpolated once, not three times: chained resamplers blur
training faces the model never sees blurred on the device. Written without any backend's tensors, it
runs the same under Keras on TensorFlow, JAX or PyTorch. It lives outside the model so saved and
converted models hold no training-only layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emo7ion.core import faces


@dataclass(frozen=True)
class DetectorFraming:
    """A face framed as the device frames it: a simulated detector box on the dataset frame, grown by the crop
    contract's margin into a square (``core.faces.square_box``), is what the rest of the augmentation moves.

    A device never sees a FER2013 frame: it sees the square around a detector box. Each box is drawn from the
    statistics of the shipped CenterFace's boxes on FER2013 faces (``emo7ion evaluate --through-detector``: box
    width, height and centre offset as fractions of the 48 px frame, measured on a stratified 1,500 train faces
    of which 1,466 were found; each a (median, IQR / 1.349) pair, a standard deviation that a few stray boxes do
    not inflate), independently, clipped to ``limit`` standard deviations. With the contract's margin the mean
    square is about the FER2013 frame; the jitter is what a detector adds around it.
    """

    width: tuple[float, float] = (0.823, 0.100)
    height: tuple[float, float] = (0.951, 0.080)
    centre_x: tuple[float, float] = (0.010, 0.046)
    centre_y: tuple[float, float] = (0.011, 0.046)
    margin: float = faces.DEFAULT_MARGIN
    limit: float = 2.0

    def boxes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 4) boxes x, y, w, h in frame units (0..1 across the dataset face)."""
        def draw(stat: tuple[float, float]) -> np.ndarray:
            median, std = stat
            return median + std * np.clip(rng.standard_normal(n), -self.limit, self.limit)

        w, h = np.maximum(draw(self.width), 0.05), np.maximum(draw(self.height), 0.05)
        cx, cy = 0.5 + draw(self.centre_x), 0.5 + draw(self.centre_y)
        return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)

    def crop_matrices(self, boxes: np.ndarray, size: int) -> np.ndarray:
        """(n, 3, 3) matrices taking a ``size`` px frame to the ``size`` px crop of the square around each box,
        in OpenCV's pixel-centre coordinates: the same square ``core.faces.square_box`` cuts on a device."""
        x, y, w, h = (boxes[:, k] * size for k in range(4))
        side = np.maximum(w, h) * (1.0 + 2.0 * self.margin)
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        k = size / side
        m = np.zeros((len(boxes), 3, 3))
        m[:, 0, 0] = m[:, 1, 1] = k
        # pixel edges: dst = (src - x0) * k; pixel centres sit half a pixel inside their edges
        m[:, 0, 2] = k * (0.5 - x0) - 0.5
        m[:, 1, 2] = k * (0.5 - y0) - 0.5
        m[:, 2, 2] = 1.0
        return m


@dataclass(frozen=True)
class AugmentSpec:
    """How far each random move may go; the defaults are the shipped recipe."""

    flip: bool = True
    rotation_degrees: float = 10.0
    shift: float = 0.1  # fraction of the face size, each axis
    zoom: float = 0.1  # scale in [1 - zoom, 1 + zoom]
    erase_probability: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.15)
    single_resample: bool = True  # False: rotate, shift and zoom each resample (the pre-1.2 recipe)
    framing: DetectorFraming | None = None  # crop each face as a device would first (``emo7ion train --framing``)

    def __post_init__(self) -> None:
        if self.framing is not None and not self.single_resample:
            raise ValueError("detector framing needs the single-resample augmentation (the three-resample "
                             "emulation is for the 1.1 ablation only)")


def affine_matrices(rng: np.random.Generator, n: int, size: int, spec: AugmentSpec) -> np.ndarray:
    """(n, 2, 3) forward matrices: the device's framing when asked, then mirror, rotate and zoom about the
    centre, then shift, composed into one matrix per face."""
    moves = _moves(rng, n, size, spec)
    if spec.framing is None:
        return moves
    crop = spec.framing.crop_matrices(spec.framing.boxes(rng, n), size)
    return np.einsum("nij,njk->nik", moves, crop)


def _moves(rng: np.random.Generator, n: int, size: int, spec: AugmentSpec) -> np.ndarray:
    centre = (size - 1) / 2.0
    angle = np.deg2rad(rng.uniform(-spec.rotation_degrees, spec.rotation_degrees, n))
    scale = rng.uniform(1.0 - spec.zoom, 1.0 + spec.zoom, n)
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0) if spec.flip else np.ones(n)
    shift = rng.uniform(-spec.shift, spec.shift, (n, 2)) * size
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.empty((n, 2, 3), np.float64)
    # [[cos, -sin], [sin, cos]] @ diag(mirror, 1), about the centre
    m[:, 0, 0], m[:, 0, 1] = cos * mirror, -sin
    m[:, 1, 0], m[:, 1, 1] = sin * mirror, cos
    m[:, :, 2] = centre - m[:, :, :2] @ np.array([centre, centre]) + shift
    return m


def _warp(face: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(face, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def augment_batch(faces: np.ndarray, rng: np.random.Generator, spec: AugmentSpec = AugmentSpec()) -> np.ndarray:
    """float32 (B, S, S, 1) in [0, 1] -> the same shape, augmented; the input is not modified."""
    batch, size = faces.shape[0], faces.shape[1]
    matrices = affine_matrices(rng, batch, size, spec)
    out = np.empty_like(faces)
    for i in range(batch):
        face = faces[i, :, :, 0]
        if spec.single_resample:
            out[i, :, :, 0] = _warp(face, matrices[i], size)
        else:
            out[i, :, :, 0] = _three_resamples(face, matrices[i], size)
    np.clip(out, 0.0, 1.0, out=out)
    _random_erase(out, rng, spec)
    return out


def _three_resamples(face: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    centre = (size - 1) / 2.0
    rotation = matrix.copy()
    rotation[:, 2] = 0.0
    linear = rotation[:, :2]
    scale = math.hypot(linear[0, 0], linear[1, 0])
    mirror = 1.0 if linear[0, 0] * linear[1, 1] - linear[0, 1] * linear[1, 0] >= 0 else -1.0
    if mirror < 0:
        face = face[:, ::-1].copy()  # a flip moves pixels without interpolating
        linear = linear @ np.diag([-1.0, 1.0])
    about_centre = np.array([centre, centre])
    for part in (linear / scale, np.eye(2) * scale):
        step = np.concatenate([part, (about_centre - part @ about_centre)[:, None]], axis=1)
        face = _warp(face, step, size)
    shift = matrix[:, 2] - (about_centre - matrix[:, :2] @ about_centre)
    return _warp(face, np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]]), size)


def _random_erase(images: np.ndarray, rng: np.random.Generator, spec: AugmentSpec) -> None:
    """Replace a random rectangle of about half the faces with noise, in place (occlusion robustness)."""
    batch, height, width = images.shape[:3]
    chosen = np.flatnonzero(rng.random(batch) < spec.erase_probability)
    for i in chosen:
        area = rng.uniform(*spec.erase_area) * height * width
        aspect = math.exp(rng.uniform(-1.0, 1.0))
        eh = int(np.clip(round(math.sqrt(area * aspect)), 1, height))
        ew = int(np.clip(round(math.sqrt(area / aspect)), 1, width))
        y0 = int(rng.integers(0, height - eh + 1))
        x0 = int(rng.integers(0, width - ew + 1))
        images[i, y0:y0 + eh, x0:x0 + ew, 0] = rng.random((eh, ew), dtype=np.float32)
