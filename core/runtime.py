"""Loads a ``.tflite`` classifier with the first interpreter available and classifies batches of faces.

The order is LiteRT (``ai_edge_litert``, TFLite's successor), then ``tflite_runtime``, then
``tensorflow.lite``: a device needs only the first. Quantized (int8/uint8) inputs and outputs are
converted with the scales read once from the model, and outputs always come back in canonical label order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from emo7ion.core import emotions, faces, provenance

log = logging.getLogger(__name__)

INTERPRETERS = ("ai_edge_litert", "tflite_runtime", "tensorflow")


class ModelError(RuntimeError):
    """A model file that is missing, corrupt, or of a contract this code does not understand."""


class Prediction(NamedTuple):
    label: str
    confidence: float
    probabilities: np.ndarray | None = None
    """All seven class probabilities in canonical order: what the edge tracker averages into one vote per person."""


def interpreter_class(prefer: str | None = None):
    """The Interpreter class of ``prefer`` or of the first installed runtime, with its name."""
    names = (prefer,) if prefer else INTERPRETERS
    errors = []
    for name in names:
        try:
            if name == "ai_edge_litert":
                from ai_edge_litert.interpreter import Interpreter
            elif name == "tflite_runtime":
                from tflite_runtime.interpreter import Interpreter
            elif name == "tensorflow":
                import tensorflow as tf

                Interpreter = tf.lite.Interpreter
            else:
                raise ImportError(f"unknown interpreter {name!r}; expected one of {', '.join(INTERPRETERS)}")
            return Interpreter, name
        except ImportError as error:
            errors.append(f"{name}: {error}")
    raise ModelError("no TFLite interpreter is installed (pip install ai-edge-litert): " + "; ".join(errors))


@dataclass(frozen=True)
class _Quant:
    scale: float
    zero_point: int
    dtype: type

    @classmethod
    def of(cls, detail: dict) -> _Quant | None:
        dtype = detail["dtype"]
        if dtype == np.float32:
            return None
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if not scale:
            raise ModelError(f"tensor {detail['name']} is {np.dtype(dtype).name} without quantization parameters")
        return cls(float(scale), int(zero_point), dtype)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        info = np.iinfo(self.dtype)
        return np.clip(np.round(x / self.scale) + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


def mirror_averaged(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """``predict`` of each face averaged with its mirror image's, both in one call of 2N faces (N, 48, 48, 1)."""
    both = np.asarray(predict(np.concatenate([batch, batch[:, :, ::-1]])))
    return 0.5 * (both[:len(batch)] + both[len(batch):])


class EmotionClassifier:
    """One interpreter, built and allocated once; ``predict`` takes float faces from ``core.faces``."""

    def __init__(self, model_path: str | Path, num_threads: int = 1, interpreter: str | None = None,
                 max_batch: int = 64, flip_average: bool = False, allow_unversioned: bool = False):
        """``flip_average``: average each face's probabilities with its mirror image's (one batch of 2N).

        A file whose provenance is missing, cut short or incomplete is refused (ModelError naming the file):
        its windows would report a version nobody can trace, and a truncated copy is the usual cause.
        ``allow_unversioned`` runs it anyway, with a warning, as version "unversioned", reading faces with the
        canonical labels and the crop devices always used unless the provenance it has names both."""
        self.path = Path(model_path)
        self.flip_average = bool(flip_average)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found")
        data = self.path.read_bytes()
        try:
            self.metadata = provenance.read(data)
        except ValueError as error:
            raise ModelError(f"{self.path}: {error}") from error
        unversioned = provenance.unversioned(data)
        if unversioned and not (self.metadata and self.metadata.get("labels") and self.metadata.get("input")):
            self.metadata = None  # nothing usable to read faces with: the canonical labels and the V1 crop
        self.crop = faces.V1  # a model without provenance keeps the crop devices always gave it
        self._label_index = self._check_contract(self.metadata)
        Interpreter, self.interpreter_name = interpreter_class(interpreter)
        try:
            self._interpreter = Interpreter(model_content=provenance.strip(data), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{self.path} is not a valid TFLite model: {error}") from error
        input_detail = self._interpreter.get_input_details()[0]
        output_detail = self._interpreter.get_output_details()[0]
        shape = tuple(int(v) for v in input_detail["shape"][1:])  # plain ints: printed as (48, 48, 1)
        if shape != (faces.FACE_SIZE, faces.FACE_SIZE, 1):
            raise ModelError(f"{self.path} takes input {shape}, not the 48x48x1 face of core.faces")
        outputs = int(output_detail["shape"][-1])
        if outputs != emotions.NUM_CLASSES:
            raise ModelError(f"{self.path} has {outputs} outputs, expected {emotions.NUM_CLASSES}")
        self._input_index = input_detail["index"]
        self._output_index = output_detail["index"]
        self._in_quant = _Quant.of(input_detail)
        self._out_quant = _Quant.of(output_detail)
        self._batch = int(input_detail["shape"][0])
        self.max_batch = max(1, int(max_batch))
        self.sha256 = provenance.sha256_file(self.path)
        # judged once the file has loaded as a model: a corrupt or foreign file gets its own error alone
        if unversioned and not allow_unversioned:
            raise ModelError(f"{self.path}: {unversioned}; refusing a classifier that cannot say which model it is "
                             "(--allow-unversioned, or allow_unversioned = true in the edge config, runs it anyway)")
        if unversioned:
            log.warning("%s: %s; running it as version 'unversioned' (allowed)%s", self.path, unversioned,
                        "" if self.metadata else ", assuming canonical labels and the core.faces contract")

    @property
    def model_id(self) -> dict:
        """What a device reports with every window: which model produced these counts."""
        meta = self.metadata or {}
        return {"sha256": self.sha256, "version": str(meta.get("version", "unversioned")),
                "variant": str(meta.get("variant", "unknown"))}

    @property
    def crop_margin(self) -> float:
        """The margin this model's faces are cropped with (``core.faces.prepare_faces``): its stored contract's."""
        return self.crop.margin

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._in_quant.dtype).name if self._in_quant else "float32"

    def _check_contract(self, metadata: dict | None) -> list[int] | None:
        if metadata is None:  # warned about once the file has loaded: a corrupt one gets its error alone
            return None
        labels = metadata.get("labels")
        try:
            order = emotions.remap_from(labels or [])
        except ValueError as error:
            raise ModelError(f"{self.path}: labels {labels!r} are not the seven emotions: {error}") from error
        contract = metadata.get("input") or {}
        expected = faces.CONTRACT.as_dict()
        for key in ("size", "color"):
            if contract.get(key) != expected[key]:
                raise ModelError(f"{self.path}: input {key}={contract.get(key)!r}, "
                                 f"this runtime expects {expected[key]!r}")
        if not np.isclose(float(contract.get("scale", -1)), expected["scale"]):
            raise ModelError(f"{self.path}: input scale={contract.get('scale')!r}, "
                             f"this runtime expects {expected['scale']}")
        try:
            self.crop = faces.FaceCropSpec.stored(contract)
        except ValueError as error:
            raise ModelError(f"{self.path}: {error}") from error
        return None if order == list(range(emotions.NUM_CLASSES)) else order

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input_index, [batch, faces.FACE_SIZE, faces.FACE_SIZE, 1])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, 7) in canonical order for float faces (N, 48, 48, 1) in [0, 1]."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[..., np.newaxis]
        if batch.shape[1:] != (faces.FACE_SIZE, faces.FACE_SIZE, 1):
            raise ValueError(f"faces must be (N, 48, 48, 1), got {batch.shape}")
        out = np.empty((len(batch), emotions.NUM_CLASSES), np.float32)
        step = max(1, self.max_batch // 2) if self.flip_average else self.max_batch
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            out[start:start + len(chunk)] = (mirror_averaged(self._invoke, chunk) if self.flip_average
                                             else self._invoke(chunk))
        if self._label_index is not None:
            reordered = np.empty_like(out)
            reordered[:, self._label_index] = out
            out = reordered
        return out

    def _invoke(self, chunk: np.ndarray) -> np.ndarray:
        self._resize(len(chunk))
        feed = self._in_quant.quantize(chunk) if self._in_quant else np.ascontiguousarray(chunk)
        self._interpreter.set_tensor(self._input_index, feed)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output_index)
        return self._out_quant.dequantize(raw) if self._out_quant else raw

    def classify(self, batch: np.ndarray) -> list[Prediction]:
        probs = self.predict(batch)
        best = probs.argmax(axis=1)
        return [Prediction(emotions.LABELS[i], float(p[i]), p) for i, p in zip(best, probs)]
