"""Box arithmetic shared by the detectors and their scoring: IoU, non-maximum suppression, tiles of a frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), boxes as x, y, w, h."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1 = a[:, 0:1], a[:, 1:2]
    ax2, ay2 = ax1 + a[:, 2:3], ay1 + a[:, 3:4]
    bx1, by1 = b[:, 0], b[:, 1]
    bx2, by2 = bx1 + b[:, 2], by1 + b[:, 3]
    inter_w = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    inter_h = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = inter_w * inter_h
    union = (a[:, 2:3] * a[:, 3:4]) + (b[:, 2] * b[:, 3]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        if order.size == 1:
            break
        overlap = iou_matrix(boxes[best:best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def tiles(width: int, height: int, grid: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """A ``grid`` x ``grid`` cover of a width x height frame as (x, y, w, h) windows overlapping by ``overlap``
    of a window's side, so a face cut by one border lies whole in the neighbouring window."""
    if grid <= 1:
        return [(0, 0, width, height)]
    windows = []
    tile_w = int(np.ceil(width / (grid - (grid - 1) * overlap)))
    tile_h = int(np.ceil(height / (grid - (grid - 1) * overlap)))
    xs = _starts(width, tile_w, grid)
    ys = _starts(height, tile_h, grid)
    for y in ys:
        for x in xs:
            windows.append((x, y, min(tile_w, width - x), min(tile_h, height - y)))
    return windows


def run_tiled(frame: np.ndarray, grid: int, overlap: float,
              run: Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x, y, w, h in frame pixels) and scores of ``run(image, is_tile)`` on the whole frame and, when
    ``grid`` > 1, on each of its overlapping tiles: the one tile loop of every tiled detector (merge with NMS)."""
    height, width = frame.shape[:2]
    windows = [(0, 0, width, height)] + (tiles(width, height, grid, overlap) if grid > 1 else [])
    found_boxes, found_scores = [], []
    for index, (x, y, w, h) in enumerate(windows):
        boxes, scores = run(frame[y:y + h, x:x + w], index > 0)
        boxes[:, 0] += x
        boxes[:, 1] += y
        found_boxes.append(boxes)
        found_scores.append(scores)
    return np.concatenate(found_boxes), np.concatenate(found_scores)


def _starts(length: int, tile: int, grid: int) -> Sequence[int]:
    if tile >= length:
        return [0]
    return [int(round(i * (length - tile) / (grid - 1))) for i in range(grid)]


@dataclass
class TiledOptions:
    """The options every tiled, NMS-merging detector shares; each adds ``threshold`` and ``tiles`` (their
    defaults differ) and its own."""

    nms_iou: float = field(default=0.3, metadata={"help": "overlap (IoU) above which the weaker of two boxes is "
                                                        "dropped, 0..1"})
    tile_overlap: float = field(default=0.25, metadata={"help": "overlap of neighbouring tiles, 0..0.9 of a side"})
    threads: int = field(default=1, metadata={"help": "threads of the detector's runtime (LiteRT or onnxruntime)"})

    def __post_init__(self) -> None:
        check_tiled_options(self)


def check_tiled_options(options) -> None:
    """The checks every tiled, NMS-merging detector's options share; raises ValueError naming the key."""
    for key in ("threshold", "nms_iou"):
        if not 0.0 <= getattr(options, key) <= 1.0:
            raise ValueError(f"{key}={getattr(options, key)!r}: must be within 0..1")
    if not 1 <= options.tiles <= 8:
        raise ValueError(f"tiles={options.tiles!r}: must be within 1..8")
    if not 0.0 <= options.tile_overlap <= 0.9:
        raise ValueError(f"tile_overlap={options.tile_overlap!r}: must be within 0..0.9")
    if options.threads < 1:
        raise ValueError(f"threads={options.threads!r}: must be at least 1")
