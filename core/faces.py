"""The one face-crop contract: from a frame and a box to the 48x48 model input.

Training, conversion, evaluation and the device all call these functions, so a face is prepared the
same way everywhere; a silent difference here costs accuracy in the field without any error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACE_SIZE = 48
"""Side of the square grayscale model input, in pixels."""

INPUT_SCALE = 1.0 / 255.0
"""Model input = uint8 gray pixel * INPUT_SCALE, i.e. floats in [0, 1]."""

DEFAULT_MARGIN = 0.1
"""Extra context around a detector box, as a fraction of its longer side on each side.

FER2013 faces are tightly cropped with a little forehead and chin; detector boxes are a bit tighter.
"""


@dataclass(frozen=True)
class FaceCropSpec:
    """The numbers of the contract, stored with every converted model so a device can check them."""

    size: int = FACE_SIZE
    scale: float = INPUT_SCALE
    margin: float = DEFAULT_MARGIN
    color: str = "gray"

    def as_dict(self) -> dict:
        return {"size": self.size, "scale": self.scale, "margin": self.margin, "color": self.color}


CONTRACT = FaceCropSpec()


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
