"""Scores a face detector on photos with ground-truth boxes: recall by face size, false positives, speed.

A detection is matched to at most one valid face at IoU >= 0.5, greedily by score (WIDER FACE style). Recall is
reported for faces at least 32 px high (what the classifier can read) and 16-32 px. A detection that matches no
valid face is a false positive unless it lies on a face the dataset marks invalid (a real but unrecognisable face).
Faces of 8-16 px are reported too: too small for the classifier, they are what ``upscale`` is for (a detector
that finds them at 1.5x finds them at 24 px in an enlarged frame).

:func:`parity` compares two detectors bin by bin: the int8 detector's proof that quantization lost no faces.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emo7ion.edge.detect.base import Detection, FaceDetector
from emo7ion.edge.detect.boxes import iou_matrix

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5
SIZE_BINS = {"32": (32.0, float("inf")), "16_32": (16.0, 32.0), "8_16": (8.0, 16.0)}
"""Face height bins, in pixels: [low, high)."""
PARITY_TOLERANCE = 0.02
"""The most recall a detector may lose against its reference in any size bin (the classifier's rule, too)."""
HD_FRAME = (1280, 720)
"""The frame size whose detection time is reported as ``ms_1280x720``."""


def match(detections: Sequence[Sequence[float]], faces: np.ndarray, iou_threshold: float = IOU_THRESHOLD
          ) -> np.ndarray:
    """For each detection (x, y, w, h, score) the index of the face (x, y, w, h) it finds, or -1.

    Detections take faces best score first; each takes the still-free face it overlaps most, if IoU >= threshold.
    """
    assigned = np.full(len(detections), -1, dtype=np.int64)
    faces = np.asarray(faces, np.float64).reshape(-1, 4)
    if not len(detections) or not len(faces):
        return assigned
    dets = np.asarray([tuple(d)[:5] for d in detections], np.float64)
    overlap = iou_matrix(dets[:, :4], faces)
    free = np.ones(len(faces), bool)
    for i in np.argsort(-dets[:, 4], kind="stable"):
        candidates = np.where(free & (overlap[i] >= iou_threshold), overlap[i], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= 0:
            assigned[i] = best
            free[best] = False
    return assigned


def size_bin(height: float) -> str | None:
    """The :data:`SIZE_BINS` name of a face ``height`` px high, or None below the smallest bin."""
    for name, (low, high) in SIZE_BINS.items():
        if low <= height < high:
            return name
    return None


def score_image(detections: Sequence[Sequence[float]], faces: Sequence[dict],
                iou_threshold: float = IOU_THRESHOLD) -> dict[str, int]:
    """Counts for one image: faces and found faces per size bin, detections, false positives.

    ``faces`` are ground-truth records ``{"box": [x, y, w, h], "invalid": bool, ...}``.
    """
    valid = [f for f in faces if not f.get("invalid", False)]
    invalid = np.array([f["box"] for f in faces if f.get("invalid", False)], np.float64).reshape(-1, 4)
    assigned = match(detections, np.array([f["box"] for f in valid], np.float64), iou_threshold)
    found = set(assigned[assigned >= 0].tolist())
    counts = {"detections": len(detections), "false_positives": 0}
    for name in SIZE_BINS:
        counts[f"faces_{name}"] = 0
        counts[f"found_{name}"] = 0
    for index, face in enumerate(valid):
        name = size_bin(float(face["box"][3]))
        if name is not None:
            counts[f"faces_{name}"] += 1
            counts[f"found_{name}"] += index in found
    unmatched = [tuple(d)[:4] for d, a in zip(detections, assigned) if a < 0]
    if unmatched and len(invalid):
        on_invalid = iou_matrix(np.array(unmatched, np.float64), invalid).max(axis=1) >= iou_threshold
        counts["false_positives"] = int((~on_invalid).sum())
    else:
        counts["false_positives"] = len(unmatched)
    return counts


def summarise(per_image: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Totals over images, with recall per size bin (None where a bin has no face)."""
    keys = ["detections", "false_positives"] + [f"{k}_{n}" for n in SIZE_BINS for k in ("faces", "found")]
    totals: dict[str, Any] = {key: int(sum(image[key] for image in per_image.values())) for key in keys}
    for name in SIZE_BINS:
        faces = totals[f"faces_{name}"]
        totals[f"recall_{name}"] = round(totals[f"found_{name}"] / faces, 4) if faces else None
    return totals


def load_ground_truth(path: str | Path) -> dict[str, list[dict]]:
    """``{file_name: [{"box": [x, y, w, h], "invalid": bool, ...}, ...]}`` from a JSON file, checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth {path} not found")
    try:
        truth = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from error
    if not isinstance(truth, dict):
        raise ValueError(f"{path}: expected an object {{file_name: [faces]}}")
    for name, faces in truth.items():
        if not isinstance(faces, list):
            raise ValueError(f"{path}: {name!r} must map to a list of faces")
        for i, face in enumerate(faces):
            box = face.get("box") if isinstance(face, dict) else None
            if not isinstance(box, list) or len(box) != 4:
                raise ValueError(f"{path}: {name!r} face {i} needs a 'box' [x, y, w, h]")
    return truth


def read_image(path: str | Path) -> np.ndarray:
    """A BGR uint8 image from a file (FileNotFoundError if missing, ValueError if not an image)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not an image OpenCV can read")
    return image


def timed_detect(detector: FaceDetector, frame: np.ndarray) -> tuple[list[Detection], float]:
    """Detections and the milliseconds they took."""
    start = time.perf_counter()
    detections = detector.detect(frame)
    return detections, (time.perf_counter() - start) * 1000.0


def score_detector(detector: FaceDetector, images_dir: str | Path, ground_truth_path: str | Path,
                   iou_threshold: float = IOU_THRESHOLD, hd_timing: bool = True) -> dict[str, Any]:
    """Runs ``detector`` once on every image of the ground truth (after one untimed warm-up call) and returns
    totals (see :func:`summarise`), ``ms_per_frame`` at native size, ``ms_1280x720`` (each image resized to
    1280x720, if ``hd_timing``) and the counts per image under ``images``."""
    import cv2

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder {images_dir} not found")
    truth = load_ground_truth(ground_truth_path)
    if not truth:
        raise ValueError(f"{ground_truth_path} lists no image")
    frames = {name: read_image(images_dir / name) for name in sorted(truth)}
    detector.detect(next(iter(frames.values())))  # first call allocates buffers: not a per-frame cost
    per_image: dict[str, dict[str, Any]] = {}
    times, hd_times = [], []
    for name, frame in frames.items():
        detections, ms = timed_detect(detector, frame)
        times.append(ms)
        per_image[name] = {**score_image(detections, truth[name], iou_threshold), "ms": round(ms, 1),
                           "size": [int(frame.shape[1]), int(frame.shape[0])]}
        log.debug("%s: %s", name, per_image[name])
        if hd_timing:
            hd_times.append(timed_detect(detector, cv2.resize(frame, HD_FRAME, interpolation=cv2.INTER_LINEAR))[1])
    result = {"detector": detector.name, **summarise(per_image), "iou_threshold": iou_threshold,
              "ms_per_frame": round(float(np.mean(times)), 1),
              "ms_1280x720": round(float(np.mean(hd_times)), 1) if hd_times else None,
              "images": per_image}
    return result


def parity(reference: dict[str, Any], candidate: dict[str, Any], tolerance: float = PARITY_TOLERANCE
           ) -> list[dict[str, Any]]:
    """Per size bin: faces, both recalls, their difference and whether ``candidate`` holds within ``tolerance``
    of ``reference`` (results of :func:`score_detector` on the same images; a bin with no face holds trivially).
    A candidate that finds more is within tolerance: parity bounds what it loses."""
    rows = []
    for name in SIZE_BINS:
        if reference[f"faces_{name}"] != candidate[f"faces_{name}"]:
            raise ValueError(f"bin {name}: the two results were scored on different faces "
                             f"({reference[f'faces_{name}']} vs {candidate[f'faces_{name}']})")
        before, after = reference[f"recall_{name}"], candidate[f"recall_{name}"]
        change = None if before is None else round(after - before, 4)
        rows.append({"bin": name, "faces": reference[f"faces_{name}"], "reference": before, "candidate": after,
                     "change": change, "holds": change is None or change >= -tolerance - 1e-9})
    return rows


def parity_table(reference: dict[str, Any], candidate: dict[str, Any], rows: list[dict[str, Any]],
                 tolerance: float = PARITY_TOLERANCE) -> str:
    """:func:`parity`'s rows as text, with both detectors' false positives and times."""
    def label(name: str) -> str:
        low, high = SIZE_BINS[name]
        return f">= {low:.0f} px" if high == float("inf") else f"{low:.0f}-{high:.0f} px"

    def recall(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    ref, cand = reference["detector"], candidate["detector"]
    width = max(len(ref), len(cand), 9)
    lines = [f"{'face height':<12} {'faces':>6} {ref:>{width}} {cand:>{width}} {'change':>7}  within {tolerance}",
             "-" * (12 + 6 + 2 * width + 7 + 20)]
    for row in rows:
        change = "-" if row["change"] is None else f"{row['change']:+.3f}"
        lines.append(f"{label(row['bin']):<12} {row['faces']:>6} {recall(row['reference']):>{width}} "
                     f"{recall(row['candidate']):>{width}} {change:>7}  {'yes' if row['holds'] else 'NO'}")
    lines.append(f"{'false pos.':<12} {'':>6} {reference['false_positives']:>{width}} "
                 f"{candidate['false_positives']:>{width}}")
    for key, what in (("ms_per_frame", "ms native"), ("ms_1280x720", "ms 1280x720")):
        if reference.get(key) and candidate.get(key):
            lines.append(f"{what:<12} {'':>6} {reference[key]:>{width}.1f} {candidate[key]:>{width}.1f} "
                         f"{candidate[key] / reference[key]:>6.2f}x")
    failed = [label(r["bin"]) for r in rows if not r["holds"]]
    if failed:
        lines.append(f"parity FAILS: {cand} loses more than {tolerance} recall against {ref} in {', '.join(failed)}")
    else:
        lines.append(f"parity holds: {cand} loses at most {tolerance} recall against {ref} in every size bin")
    return "\n".join(lines)
