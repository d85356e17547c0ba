"""The one face-crop contract: from a frame and a box to the 48x48 model input.

Training, conversion, evaluation and the device all call these functions, so a face is prepared the
same way everywhere; a silent difference here costs accuracy in the field without any error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

FACE_SIZE = 48
"""Side of the square grayscale model input, in pixels."""

INPUT_SCALE = 1.0 / 255.0
"""Model input = uint8 gray pixel * INPUT_SCALE, i.e. floats in [0, 1]."""

CONTRACT_VERSION = 2
"""The crop contract converted models are stamped with; a device refuses a version it does not know.

1 (models up to 1.2, which carry no version): margin 0.1, chosen by eye. 2: margin 0.025, chosen by measuring the
detector's path on val (``emo7ion evaluate --through-detector``, models/MODEL_CARD.md): CenterFace's box is 0.95
of a FER2013 frame tall, so a square grown by 2.5% each side is the framing the classifier was trained on, and
every larger margin measured lower. Only the margin differs; a device crops each model with its own stored
margin, so a v1 model keeps its 0.1.
"""

KNOWN_VERSIONS = (1, 2)

V1_MARGIN = 0.1
"""The margin of contract 1, also assumed for a model that carries no provenance at all (the old behaviour)."""

DEFAULT_MARGIN = 0.025
"""Extra context around a detector box, as a fraction of its longer side on each side (contract 2).

FER2013 frames hold the face with a little forehead and chin: about 1.05 times the height of CenterFace's box.
"""


@dataclass(frozen=True)
class FaceCropSpec:
    """The numbers of the contract, stored with every converted model so a device can check them."""

    size: int = FACE_SIZE
    scale: float = INPUT_SCALE
    margin: float = DEFAULT_MARGIN
    color: str = "gray"
    version: int = CONTRACT_VERSION

    def as_dict(self) -> dict:
        return {"size": self.size, "scale": self.scale, "margin": self.margin, "color": self.color,
                "version": self.version}

    @classmethod
    def stored(cls, contract: Mapping) -> FaceCropSpec:
        """The contract a model states (its provenance's ``input``): no ``version`` is 1. Raises ValueError for a
        version this code does not know or a margin it cannot crop with; size, scale and colour are the caller's
        to compare (a device supports one of each)."""
        version = contract.get("version", 1)
        if isinstance(version, bool) or version not in KNOWN_VERSIONS:
            raise ValueError(f"crop contract version {version!r} is not one this code knows "
                             f"({', '.join(map(str, KNOWN_VERSIONS))}): update emo7ion")
        margin = contract.get("margin", V1_MARGIN if version == 1 else None)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0.0 <= margin <= 1.0:
            raise ValueError(f"crop contract margin {margin!r}: expected a number within 0..1")
        return cls(size=contract.get("size", FACE_SIZE), scale=contract.get("scale", INPUT_SCALE),
                   margin=float(margin), color=contract.get("color", "gray"), version=int(version))


CONTRACT = FaceCropSpec()
"""What the converter stamps into new models."""

V1 = FaceCropSpec(margin=V1_MARGIN, version=1)
"""Contract 1, as stored by the models before it had a version."""


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 HxW grayscale view of a gray, BGR or BGRA image (ITU-R BT.601 weights, as OpenCV)."""
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in (3, 4) and image.dtype == np.uint8 and _cv2() is not None:
        cv2 = _cv2()
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        b, g, r = (image[:, :, i].astype(np.float32) for i in range(3))
        gray = np.clip(0.114 * b + 0.587 * g + 0.299 * r + 0.5, 0, 255)
    else:
        raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")
    return gray.astype(np.uint8, copy=False)


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - every supported install has OpenCV
        return None
    return cv2


def square_box(box: tuple[float, float, float, float], margin: float, frame_w: int, frame_h: int
               ) -> tuple[int, int, int]:
    """The square (x, y, side) around a detector box (x, y, w, h) grown by ``margin`` on each side.

    The square may reach outside the frame; :func:`crop_face` pads it with edge pixels then.
    """
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box {box} has no area")
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(w, h) * (1.0 + 2.0 * margin)
    side_px = max(1, int(round(side)))
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side_px


def crop_face(frame: np.ndarray, box: tuple[float, float, float, float],
              margin: float = DEFAULT_MARGIN, size: int = FACE_SIZE) -> np.ndarray:
    """A ``size`` x ``size`` uint8 grayscale face from ``frame`` (gray or BGR) and a box (x, y, w, h)."""
    gray = to_gray(frame)
    frame_h, frame_w = gray.shape
    x0, y0, side = square_box(box, margin, frame_w, frame_h)
    # Clamp indices rather than pad with a copy: edge replication keeps a face at the border usable.
    rows = np.clip(np.arange(y0, y0 + side), 0, frame_h - 1)
    cols = np.clip(np.arange(x0, x0 + side), 0, frame_w - 1)
    return resize_gray(gray[np.ix_(rows, cols)], size)


def resize_gray(gray: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Area-average down (or bilinear up) to size x size; OpenCV when present, numpy otherwise."""
    if gray.shape == (size, size):
        return np.ascontiguousarray(gray, dtype=np.uint8)
    try:
        import cv2
    except ImportError:  # pragma: no cover - every supported install has OpenCV
        return _resize_numpy(gray, size)
    h, w = gray.shape
    interpolation = cv2.INTER_AREA if (h >= size and w >= size) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(gray), (size, size), interpolation=interpolation)


def _resize_numpy(gray: np.ndarray, size: int) -> np.ndarray:
    h, w = gray.shape
    ys = np.minimum(((np.arange(size) + 0.5) * h / size).astype(int), h - 1)
    xs = np.minimum(((np.arange(size) + 0.5) * w / size).astype(int), w - 1)
    return gray[np.ix_(ys, xs)].astype(np.uint8)


def normalise(faces: np.ndarray) -> np.ndarray:
    """uint8 faces (..., 48, 48) or (..., 48, 48, 1) -> float32 model input (..., 48, 48, 1) in [0, 1]."""
    faces = np.asarray(faces)
    if faces.shape[-1] != 1:
        faces = faces[..., np.newaxis]
    if faces.shape[-3:] != (FACE_SIZE, FACE_SIZE, 1):
        raise ValueError(f"faces must be {FACE_SIZE}x{FACE_SIZE}, got shape {faces.shape}")
    return faces.astype(np.float32) * np.float32(INPUT_SCALE)


def prepare_faces(frame: np.ndarray, boxes, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A float32 batch (N, 48, 48, 1) ready for the classifier, from one frame and its boxes."""
    gray = to_gray(frame)  # once per frame, not once per face
    crops = [crop_face(gray, box, margin) for box in boxes]
    if not crops:
        return np.zeros((0, FACE_SIZE, FACE_SIZE, 1), np.float32)
    return normalise(np.stack(crops))
