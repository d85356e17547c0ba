"""``emo7ion evaluate --through-detector``: a labelled face set scored the way a device sees faces.

``emo7ion evaluate`` feeds each 48x48 dataset image straight to the model, in the dataset's own framing. A
device never sees that framing: it crops a detector box grown by the contract's margin (``core.faces``). Here
each face is placed on a canvas large enough for the detector to find it, run through the detector, cropped by
the crop contract at one or more margins and classified; the same faces are also classified in their native
framing, so the two accuracies compare like with like.

The detector is an argument (a function from a BGR frame to boxes): this module sits in the training floor,
which imports only ``core``; the command layer builds the agent's detector from the edge registry and passes it.
The detector runs once per face; every margin is cropped from the same box, so a margin sweep costs crops and
classifier passes, not detector passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emo7ion.core import emotions, faces, provenance
from emo7ion.training import data as datasets
from emo7ion.training import metrics
from emo7ion.training.evaluate import load_predictor

FILLS = ("gray", "mean", "replicate")
"""How the canvas around a face is filled: mid-gray 128, the mean of the face's outer ring of pixels, or the
face's edge pixels replicated outwards (what the issue's first try used)."""

Detect = Callable[[np.ndarray], Sequence]
"""A BGR uint8 frame -> detections with x, y, w, h and score (``edge.detect.base.Detection``), best first."""


@dataclass(frozen=True)
class Canvas:
    """Where a dataset face is put for the detector: upscaled ``scale`` times (a 48 px face is too small for
    CenterFace at its native size) and surrounded by a border of ``pad`` x the upscaled side, filled by ``fill``."""

    scale: int = 4
    pad: float = 0.25
    fill: str = "gray"

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"canvas fill {self.fill!r}: expected one of {', '.join(FILLS)}")
        if not 1 <= self.scale <= 8:
            raise ValueError(f"canvas scale {self.scale!r}: expected 1..8")
        if not 0.0 <= self.pad <= 2.0:
            raise ValueError(f"canvas pad {self.pad!r}: expected 0..2")

    def place(self, face: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
        """A BGR canvas holding ``face`` (HxW uint8 gray, square), and where the face lies in it (x, y, side)."""
        import cv2

        side = face.shape[0] * self.scale
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        border = int(round(side * self.pad))
        if self.fill == "replicate":
            canvas = cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE)
        else:
            level = 128 if self.fill == "gray" else int(round(_outer_ring_mean(face)))
            canvas = cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_CONSTANT, value=level)
        return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), (border, border, side)


def _outer_ring_mean(face: np.ndarray) -> float:
    ring = np.concatenate([face[0], face[-1], face[1:-1, 0], face[1:-1, -1]])
    return float(ring.mean())


@dataclass
class DetectedBoxes:
    """The detector's box on each face, in units of the dataset frame (0..1 across the 48 px image)."""

    boxes: np.ndarray  # (N, 4) x, y, w, h in frame units; NaN where no face was found
    scores: np.ndarray  # (N,) the kept detection's score; 0 where none
    others: np.ndarray  # (N,) detections on the canvas not matched to the face (e.g. in the border)

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])


def detect_boxes(images: np.ndarray, detect: Detect, canvas: Canvas, progress: bool = True) -> DetectedBoxes:
    """Runs the detector once per face. The face's box is the best-scoring detection whose centre lies inside
    the placed face: a box in the border is not that face, whatever its score."""
    from tqdm import tqdm

    n = len(images)
    boxes = np.full((n, 4), np.nan)
    scores = np.zeros(n)
    others = np.zeros(n, np.int64)
    for i in tqdm(range(n), unit="face", desc="detect", disable=not progress, mininterval=10, leave=False):
        frame, (fx, fy, side) = canvas.place(images[i])
        matched = False
        for d in detect(frame):
            cx, cy = d.x + d.w / 2.0, d.y + d.h / 2.0
            inside = fx <= cx < fx + side and fy <= cy < fy + side
            if inside and not matched:
                boxes[i] = ((d.x - fx) / side, (d.y - fy) / side, d.w / side, d.h / side)
                scores[i] = d.score
                matched = True
            else:
                others[i] += 1
    return DetectedBoxes(boxes, scores, others)


def crops(images: np.ndarray, boxes: np.ndarray, margin: float, canvas: Canvas) -> np.ndarray:
    """uint8 (N, 48, 48) crops by the contract (``core.faces.crop_face``) from each face's canvas, at ``margin``.

    The crop is cut from the same canvas the detector saw, so where the square reaches past the face it takes
    the canvas fill, as a device's crop takes whatever surrounds a face."""
    out = np.empty((len(images), faces.FACE_SIZE, faces.FACE_SIZE), np.uint8)
    for i, (image, box) in enumerate(zip(images, boxes)):
        frame, (fx, fy, side) = canvas.place(image)
        x, y, w, h = box
        out[i] = faces.crop_face(frame, (fx + x * side, fy + y * side, w * side, h * side), margin)
    return out


def box_statistics(boxes: np.ndarray) -> dict:
    """Median and spread of the detector's boxes relative to the dataset frame: what framing augmentation draws
    from (``training.augment.DetectorFraming``). Centre offsets are from the frame's centre, in frame units."""
    w, h = boxes[:, 2], boxes[:, 3]
    cx = boxes[:, 0] + w / 2.0 - 0.5
    cy = boxes[:, 1] + h / 2.0 - 0.5

    def spread(values: np.ndarray) -> dict:
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        return {"median": round(float(q50), 4), "q25": round(float(q25), 4), "q75": round(float(q75), 4),
                "std": round(float(values.std()), 4)}

    return {"n": int(len(boxes)), "width": spread(w), "height": spread(h), "centre_x": spread(cx),
            "centre_y": spread(cy), "side_over_frame_at_margin_0": spread(np.maximum(w, h))}


def border_share(boxes: np.ndarray, margin: float) -> np.ndarray:
    """The share of each crop's square that lies outside the dataset frame (canvas fill, not face): what a margin
    measures of the fill rather than of the framing."""
    w, h = boxes[:, 2], boxes[:, 3]
    side = np.maximum(w, h) * (1.0 + 2.0 * margin)
    x0, y0 = boxes[:, 0] + w / 2 - side / 2, boxes[:, 1] + h / 2 - side / 2
    inside_x = np.clip(np.minimum(x0 + side, 1.0) - np.maximum(x0, 0.0), 0.0, None)
    inside_y = np.clip(np.minimum(y0 + side, 1.0) - np.maximum(y0, 0.0), 0.0, None)
    return 1.0 - inside_x * inside_y / (side * side)


def classify(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int) -> np.ndarray:
    """Predicted class of each uint8 48x48 face."""
    out = [predict(faces.normalise(images[s:s + batch_size])).argmax(axis=1)
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _accuracy_line(summary: dict) -> dict:
    """The figures a margin sweep compares: accuracy, macro F1 and per-class recall."""
    return {key: summary[key] for key in ("n", "accuracy", "macro_f1", "per_class")}


def contract_margin(model: str | Path) -> float:
    """The margin a device crops ``model``'s faces with: a ``.tflite`` file's stored contract (no provenance:
    contract 1, as ``core.runtime`` assumes), or the current contract for a ``.keras`` model, which converts to it."""
    path = Path(model)
    if path.suffix != ".tflite":
        return faces.CONTRACT.margin
    metadata = provenance.read(path.read_bytes())
    if metadata is None:
        return faces.V1.margin
    return faces.FaceCropSpec.stored(metadata.get("input") or {}).margin


def evaluate_through_detector(model: str, data_dir: str, detect: Detect, split: str | None = None,
                              margins: Sequence[float] | None = None, canvas: Canvas = Canvas(),
                              flip: bool = True, subset: int | None = None, batch_size: int = 64,
                              threads: int = 1, interpreter: str | None = None, progress: bool = True,
                              allow_unversioned: bool = False) -> dict:
    """Detected share, accuracy through the detector at each margin and accuracy in the dataset's framing on the
    same detected faces (``native``), plus the native accuracy of all faces and the detector's box statistics.

    ``margins[0]`` is the headline margin (``through_detector``); every margin is in ``margins``. Without
    margins, the model's own contract margin: the crop a device gives this model."""
    margins = list(margins) if margins else [contract_margin(model)]
    dataset = datasets.load(data_dir, split)
    if subset:
        dataset = dataset.subset(subset)
    predict, info = load_predictor(model, threads, interpreter, flip, allow_unversioned)
    began = time.perf_counter()
    detected = detect_boxes(dataset.x, detect, canvas, progress)
    detect_s = time.perf_counter() - began
    found = detected.found
    x, y = dataset.x[found], dataset.y[found]
    native_all = classify(predict, dataset.x, batch_size)
    native = metrics.summarise(y, native_all[found])
    by_margin = {}
    for margin in margins:
        predicted = classify(predict, crops(x, detected.boxes[found], margin, canvas), batch_size)
        by_margin[f"{margin:g}"] = {**_accuracy_line(metrics.summarise(y, predicted)),
                                    "agree_with_native": round(float((predicted == native_all[found]).mean()), 4)
                                    if len(y) else 0.0,
                                    "border_share": round(float(border_share(detected.boxes[found], margin).mean()), 4)
                                    if len(y) else 0.0}
    headline = by_margin[f"{margins[0]:g}"]
    per_class_found = {label: round(float(found[dataset.y == k].mean()), 4) if (dataset.y == k).any() else 0.0
                       for k, label in enumerate(emotions.LABELS)}
    return {
        "model": str(model), "data": str(data_dir), "split": split, "n": len(dataset),
        "detected": int(found.sum()), "detected_share": round(float(found.mean()), 4),
        "detected_share_per_class": per_class_found,
        "other_boxes": int(detected.others.sum()),
        "margin": float(margins[0]), "contract_margin": contract_margin(model),
        "through_detector": headline,
        "native": _accuracy_line(native),
        "native_all": _accuracy_line(metrics.summarise(dataset.y, native_all)),
        "margins": by_margin,
        "boxes": box_statistics(detected.boxes[found]) if found.any() else {"n": 0},
        "canvas": asdict(canvas),
        "detector_ms_per_face": round(1000 * detect_s / max(1, len(dataset)), 1),
        "flip_average": flip, **info,
    }


def format_report(report: dict) -> str:
    """The report as lines for a terminal."""
    canvas = report["canvas"]
    lines = [f"{report['n']} faces on a canvas (face x{canvas['scale']}, border {canvas['pad']:g} of its side, "
             f"{canvas['fill']} fill); detected {report['detected']} ({100 * report['detected_share']:.1f}%), "
             f"{report['other_boxes']} other boxes",
             f"on the detected faces: native framing {100 * report['native']['accuracy']:.2f}%, through the "
             f"detector at margin {report['margin']:g} {100 * report['through_detector']['accuracy']:.2f}%"
             f" (all faces, native: {100 * report['native_all']['accuracy']:.2f}%)", "",
             f"{'framing':<18}{'top-1':>8}{'macro F1':>10}" + "".join(f"{label[:7]:>9}" for label in emotions.LABELS)]

    def row(name: str, line: dict) -> str:
        return (f"{name:<18}{100 * line['accuracy']:>7.2f}%{line['macro_f1']:>10.3f}"
                + "".join(f"{100 * line['per_class'][label]:>9.1f}" for label in emotions.LABELS))

    lines.append(row("native", report["native"]))
    for margin, line in report["margins"].items():
        lines.append(row(f"margin {margin}", line) + f"   border {100 * line['border_share']:.1f}% of the crop")
    lines.append(row("detected share", {"accuracy": report["detected_share"], "macro_f1": float("nan"),
                                        "per_class": report["detected_share_per_class"]}))
    boxes = report["boxes"]
    if boxes.get("n"):
        width, height = boxes["width"], boxes["height"]
        lines += ["", f"detector box / dataset frame: width {width['median']:.3f} "
                      f"(IQR {width['q25']:.3f}-{width['q75']:.3f}), height {height['median']:.3f} "
                      f"(IQR {height['q25']:.3f}-{height['q75']:.3f}), centre offset "
                      f"x {boxes['centre_x']['median']:+.3f}, y {boxes['centre_y']['median']:+.3f}"]
    return "\n".join(lines)
