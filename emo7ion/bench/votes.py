"""Per-person votes against per-frame predictions, on SYNTHETIC people made of labelled FER2013 val faces.

The agent gives each tracked person one vote per window: the argmax of the mean of the class probabilities of
the person's frames. Whether that reads a person's expression better than one frame does depends on how
independent the frames' errors are, so two kinds of synthetic person bracket it:

- ``distinct``: k different val faces that share a label. Errors are nearly independent, as if each frame
  were a fresh look at the person: the most a vote can gain.
- ``jitter``: one val face seen k times, shifted, scaled, turned and re-lit a little each frame (a person
  sitting still before a slightly shaking camera). Errors are strongly correlated: close to the least a
  vote can gain.

Real tracks fall between the two. No real video with per-person expression labels was used: these are not
measurements of people in a venue.
"""

from __future__ import annotations

import numpy as np

from emo7ion.core import emotions, faces

KINDS = ("distinct", "jitter")


def jittered(face: np.ndarray, rng: np.random.Generator, shift: float = 2.0, scale: float = 0.05,
             degrees: float = 5.0, light: float = 0.12) -> np.ndarray:
    """One 48x48 uint8 face moved by a few pixels, scaled and turned by a few percent and degrees, re-lit."""
    import cv2

    size = faces.FACE_SIZE
    angle = rng.uniform(-degrees, degrees)
    zoom = 1.0 + rng.uniform(-scale, scale)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    matrix[:, 2] += rng.uniform(-shift, shift, 2)
    moved = cv2.warpAffine(face, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    gain = 1.0 + rng.uniform(-light, light)
    return np.clip(moved.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def people(x: np.ndarray, y: np.ndarray, kind: str, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic people: faces (P, k, 48, 48) uint8 and labels (P,).

    ``distinct`` shuffles each label's faces and cuts them into runs of k (a label with fewer than k faces
    gives none; the rest of a label that does not divide by k is left out), so each val face is used once.
    ``jitter`` makes one person of every face."""
    rng = np.random.default_rng(seed)
    if kind == "distinct":
        runs, labels = [], []
        for label in range(emotions.NUM_CLASSES):
            idx = rng.permutation(np.flatnonzero(y == label))
            whole = len(idx) // k * k
            if whole:
                runs.append(x[idx[:whole]].reshape(-1, k, *x.shape[1:]))
                labels.append(np.full(whole // k, label))
        if not runs:
            raise ValueError(f"no label has {k} faces")
        return np.concatenate(runs), np.concatenate(labels)
    if kind == "jitter":
        frames = np.stack([[face if i == 0 else jittered(face, rng) for i in range(k)] for face in x])
        return frames, np.asarray(y)
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def accuracy(predict, frames: np.ndarray, labels: np.ndarray) -> dict:
    """Per-frame accuracy (each frame's argmax) and per-person accuracy (argmax of the mean probabilities),
    each also as balanced accuracy (the mean of the per-class recalls: val is mostly happy faces)."""
    count, k = frames.shape[:2]
    probs = np.asarray(predict(faces.normalise(frames.reshape(count * k, *frames.shape[2:]))))
    probs = probs.reshape(count, k, emotions.NUM_CLASSES)
    per_frame = probs.argmax(axis=2)
    vote = probs.mean(axis=1).argmax(axis=1)
    frame_truth = np.repeat(labels[:, None], k, axis=1)
    return {"people": int(count), "frames": int(count * k),
            "frame_accuracy": round(float((per_frame == frame_truth).mean()), 4),
            "vote_accuracy": round(float((vote == labels).mean()), 4),
            "frame_balanced": round(balanced(per_frame.ravel(), frame_truth.ravel()), 4),
            "vote_balanced": round(balanced(vote, labels), 4)}


def balanced(predicted: np.ndarray, truth: np.ndarray) -> float:
    recalls = [float((predicted[truth == c] == c).mean()) for c in range(emotions.NUM_CLASSES) if (truth == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


def run(predict, x: np.ndarray, y: np.ndarray, ks=(1, 3, 5, 10), kinds=KINDS, seed: int = 0,
        max_people: int | None = None, tick=None) -> list[dict]:
    """One row per (kind, k) (k = 1 once: one frame is one frame). ``max_people`` keeps a random subset of each
    row's people (speed: the whole val set at k = 10 is ~70,000 classifications)."""
    rows = []
    for kind in kinds:
        for k in ks:
            if k == 1 and kind != kinds[0]:
                continue
            frames, labels = people(x, y, kind, k, seed)
            if max_people is not None and len(labels) > max_people:
                keep = np.sort(np.random.default_rng(seed).choice(len(labels), max_people, replace=False))
                frames, labels = frames[keep], labels[keep]
            rows.append({"kind": "single" if k == 1 else kind, "k": k, **accuracy(predict, frames, labels)})
            if tick:
                tick()
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'synthetic person':>17} {'k':>3} {'people':>7} {'frames':>7} {'frame acc':>10} {'vote acc':>9} "
            f"{'frame bal':>10} {'vote bal':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['kind']:>17} {r['k']:>3} {r['people']:>7} {r['frames']:>7} {r['frame_accuracy']:>10.3f} "
                     f"{r['vote_accuracy']:>9.3f} {r['frame_balanced']:>10.3f} {r['vote_balanced']:>9.3f}")
    lines.append("SYNTHETIC: each person is k labelled FER2013 val faces (distinct: k faces of one label; jitter: "
                 "one face moved and re-lit k times), not people filmed in a venue.")
    return "\n".join(lines)
