"""IDF1 (Ristani et al., 2016) of a tracker against a clip's truth, in numpy.

IDF1 asks "did one track follow one person": truth identities and track ids are paired one to one for the
whole clip so as to maximise the frames where a pair's boxes overlap (IoU >= 0.5); IDF1 = 2 IDTP / (truth
boxes + track boxes). A person split over three tracks keeps only the longest piece as true positives,
so fragmentation and identity switches both lower it.

Why not ``motmetrics``: its last release (1.4.0, 2022) calls ``np.asfarray``, removed in numpy 2, and
pulls pandas onto the bench for one figure. The pairing is a small assignment problem solved here by the
Hungarian method (``assign``), checked against brute force in tests/test_bench_people.py.

Boxes on faces the truth does not score (too small, partly outside the frame, marked invalid) are dropped
from the tracks before scoring, as MOT benchmarks do with "don't care" regions: the truth's 32 px rule
must not turn a correct track on a 30 px face into a false alarm.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h
IOU = 0.5


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x, y, w, h boxes -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0][:, None], b[:, 0][None]), 0, None)
    h = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1][:, None], b[:, 1][None]), 0, None)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Rows paired to columns at the least total cost (every row of a tall matrix, every column of a wide one):
    the Hungarian method with potentials, O(n^3), vectorised over columns."""
    cost = np.asarray(cost, np.float64)
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    transposed = rows > cols
    if transposed:
        cost = cost.T
        rows, cols = cols, rows
    inf = np.inf
    u = np.zeros(rows + 1)
    v = np.zeros(cols + 1)
    owner = np.zeros(cols + 1, dtype=np.int64)  # owner[j]: 1-based row holding column j; 0 = free
    way = np.zeros(cols + 1, dtype=np.int64)
    for row in range(1, rows + 1):
        owner[0] = row
        column = 0
        least = np.full(cols + 1, inf)
        used = np.zeros(cols + 1, dtype=bool)
        while True:
            used[column] = True
            i = owner[column]
            reduced = cost[i - 1] - u[i] - v[1:]
            free = ~used[1:]
            better = free & (reduced < least[1:])
            least[1:][better] = reduced[better]
            way[1:][better] = column
            candidates = np.where(free, least[1:], inf)
            nxt = int(np.argmin(candidates)) + 1
            delta = candidates[nxt - 1]
            u[owner[used]] += delta
            v[used] -= delta
            least[1:][free] -= delta
            column = nxt
            if owner[column] == 0:
                break
        while column:
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    pairs = [(int(owner[j]) - 1, j - 1) for j in range(1, cols + 1) if owner[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)


@dataclasses.dataclass
class Score:
    idf1: float
    idp: float
    idr: float
    idtp: int
    truth_boxes: int
    track_boxes: int
    ignored_boxes: int
    tracks_per_person: float
    """Mean number of tracks matched (IoU >= 0.5 in some frame) to a person: 1.0 means no fragmentation."""
    switches: int
    """Times a person's matched track id changed from one matched frame to the next."""

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


def drop_ignored(tracks: Mapping[int, Box], scored: Sequence[Box], ignored: Sequence[Box],
                 threshold: float = IOU) -> dict[int, Box]:
    """``tracks`` less those on an ignored face: a track box goes when it overlaps an ignored face at
    ``threshold`` and overlaps no scored face better."""
    if not tracks or not len(ignored):
        return dict(tracks)
    ids = list(tracks)
    boxes = np.array([tracks[i] for i in ids])
    on_ignored = iou(boxes, np.array(ignored)).max(axis=1)
    on_scored = iou(boxes, np.array(scored)).max(axis=1) if len(scored) else np.zeros(len(ids))
    return {i: tracks[i] for i, bad, good in zip(ids, on_ignored, on_scored) if not (bad >= threshold and bad > good)}


def score(truth: Sequence[Mapping[int, Box]], tracks: Sequence[Mapping[int, Box]],
          ignored: Sequence[Sequence[Box]] | None = None, threshold: float = IOU) -> Score:
    """IDF1 of per-frame track boxes ``tracks[f]`` (track id -> box) against ``truth[f]`` (person -> box)."""
    if len(truth) != len(tracks):
        raise ValueError(f"{len(truth)} truth frames but {len(tracks)} track frames")
    overlap: dict[tuple[int, int], int] = defaultdict(int)
    truth_n, track_n, dropped, switches = 0, 0, 0, 0
    last_match: dict[int, int] = {}
    matched_tracks: dict[int, set[int]] = defaultdict(set)
    for frame, people in enumerate(truth):
        kept = dict(tracks[frame])
        if ignored is not None:
            before = len(kept)
            kept = drop_ignored(kept, list(people.values()), ignored[frame], threshold)
            dropped += before - len(kept)
        truth_n += len(people)
        track_n += len(kept)
        if not people or not kept:
            continue
        pids, tids = list(people), list(kept)
        ious = iou(np.array([people[p] for p in pids]), np.array([kept[t] for t in tids]))
        for a, b in zip(*np.nonzero(ious >= threshold)):
            overlap[pids[a], tids[b]] += 1
        # switches and fragments from the frame's own one-to-one matching
        for a, b in assign(-np.where(ious >= threshold, ious, 0.0)):
            if ious[a, b] < threshold:
                continue
            person, track = pids[a], tids[b]
            matched_tracks[person].add(track)
            if last_match.get(person, track) != track:
                switches += 1
            last_match[person] = track
    pids = sorted({p for p, _ in overlap})
    tids = sorted({t for _, t in overlap})
    idtp = 0
    if pids:
        gain = np.zeros((len(pids), len(tids)))
        prow, tcol = {p: i for i, p in enumerate(pids)}, {t: j for j, t in enumerate(tids)}
        for (p, t), n in overlap.items():
            gain[prow[p], tcol[t]] = n
        idtp = int(sum(gain[a, b] for a, b in assign(-gain)))
    people_seen = {p for frame in truth for p in frame}
    return Score(
        idf1=2 * idtp / (truth_n + track_n) if truth_n + track_n else 1.0,
        idp=idtp / track_n if track_n else 0.0, idr=idtp / truth_n if truth_n else 0.0,
        idtp=idtp, truth_boxes=truth_n, track_boxes=track_n, ignored_boxes=dropped,
        tracks_per_person=(sum(len(matched_tracks[p]) for p in people_seen) / len(people_seen)
                           if people_seen else 0.0),
        switches=switches)
