"""Greedy against optimal assignment for the edge tracker: same pairs? how fast? (docs/architecture.md)

Moves the annotated faces (16 px and taller: those the agent classifies) of the crowd sample photos as a
camera pan would (a steady drift, a few pixels of detector jitter on each box, 10% of the detections missed),
runs ``edge.track.Tracker`` with each assignment, and prints the frames where the pairs differ from scipy's,
the tracks each made (fragmentation), and microseconds per assignment. scipy and lap are optional here
(``pip install lap``); the edge needs neither.

    python scripts/measure_track_assignment.py [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from emo7ion.edge.detect.boxes import iou_matrix
from emo7ion.edge.track import Tracker, greedy_assignment

CROWD = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowd-sample" / "ground_truth.json"


def scipy_assignment(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(1.0 - iou)
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if iou[r, c] >= threshold]


def lap_assignment(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    import lap

    if iou.size == 0:
        return []
    _, x, _ = lap.lapjv(1.0 - iou, extend_cost=True, cost_limit=1.0 - threshold)
    return [(r, int(c)) for r, c in enumerate(x.tolist()) if c >= 0 and iou[r, c] >= threshold]


def frames(boxes: np.ndarray, count: int, rng: np.random.Generator):
    drift = rng.uniform(-6, 6, 2)  # pixels per frame, a slow pan
    for index in range(count):
        moved = boxes.copy()
        moved[:, :2] += drift * index + rng.normal(0, 1.5, (len(boxes), 2))
        moved[:, 2:] *= rng.normal(1.0, 0.04, (len(boxes), 2))
        yield moved[rng.random(len(boxes)) > 0.1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    truth = json.loads(CROWD.read_text())
    methods = {"greedy": greedy_assignment, "scipy": scipy_assignment}
    try:
        import lap  # noqa: F401

        methods["lap"] = lap_assignment
    except ImportError:
        print("lap not installed: skipped")
    for name, faces in truth.items():
        boxes = np.array([f["box"] for f in faces if not f["invalid"] and f["box"][3] >= 16], np.float64)
        sequence = list(frames(boxes, args.frames, np.random.default_rng(0)))
        differ, tracks = dict.fromkeys(methods, 0), {}
        for method, assign in methods.items():
            tracker, seen = Tracker(iou=0.3, max_gap_s=1.0, assign=assign), set()
            for index, frame in enumerate(sequence):
                predicted = np.array([t.predict(index / 6) for t in tracker.live]).reshape(-1, 4)
                overlap = iou_matrix(frame, predicted)
                if sorted(assign(overlap, 0.3)) != sorted(scipy_assignment(overlap, 0.3)):
                    differ[method] += 1
                seen.update(t.number for t in tracker.update(frame, index / 6)[0])
            tracks[method] = len(seen)
        timing = {}
        for method, assign in methods.items():
            overlap = iou_matrix(sequence[1], sequence[0])
            began, runs = time.perf_counter(), 0
            while time.perf_counter() - began < 0.3:
                assign(overlap, 0.3)
                runs += 1
            timing[method] = 1e6 * (time.perf_counter() - began) / runs
        print(f"{name}: {len(boxes)} faces, {args.frames} frames")
        for method in methods:
            print(f"  {method:6s} frames differing from scipy {differ[method]:3d}  tracks {tracks[method]:4d}  "
                  f"{timing[method]:8.1f} us per assignment")


if __name__ == "__main__":
    main()
