"""Virtual-camera clips from annotated crowd photos, with the truth of who is in view in every frame.

A crowd photo with face boxes becomes a video whose people are known: a 16:9 view pans and zooms across
the photo and each frame is that view scaled to the output size (one ``cv2.warpAffine``). Every valid
annotated face is one person with a fixed identity, and its box follows the view exactly, so the people a
tracker should count, and which of its tracks belong to whom, are known frame by frame. That is what a
real recording cannot give: a head count that is right by construction.

The truth counts a person who was, for at least ``min_seconds`` in one stretch, fully inside the frame
with a box at least ``min_px`` high in the rendered frame (the size the classifier can read). Faces the
truth leaves out (partly outside, smaller, marked invalid by WIDER FACE) are "don't care": a tracker is
neither rewarded nor punished for them (see ``idf1``).

The photos are read where they lie (``../shared/data/crowd-sample/``); their licence does not allow
copying them into the project.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1280, 720
MIN_PX = 32
"""A face the truth counts is at least this high in the rendered frame: the size the classifier can read."""
MIN_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Key:
    """Where the view is at time ``t`` (seconds): its centre in photo pixels and its zoom (output px per photo px)."""

    t: float
    cx: float
    cy: float
    zoom: float


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One clip: a photo and the camera's path over it, with keyframe times as fractions of the clip."""

    name: str
    photo: str
    path: tuple[Key, ...]
    about: str


SCENARIOS = {
    "band-pan": Scenario(
        "band-pan", "0_Parade_marchingband_1_765.jpg",
        (Key(0.0, 300, 275, 2.75), Key(1.0, 724, 275, 2.75)),
        "132-person marching band, pan left to right at 2.75x (faces 25-75 px)"),
    "band-zoom": Scenario(
        "band-zoom", "0_Parade_marchingband_1_765.jpg",
        (Key(0.0, 512, 280, 1.6), Key(0.5, 380, 260, 3.2), Key(1.0, 660, 240, 3.2)),
        "the same band: zoom in from 1.6x to 3.2x (faces cross 32 px), then pan right"),
    "meeting": Scenario(
        "meeting", "11_Meeting_Meeting_11_Meeting_Meeting_11_26.jpg",
        (Key(0.0, 330, 330, 2.4), Key(1.0, 700, 320, 2.4)),
        "a meeting room from the back, pan at 2.4x (faces 22-94 px)"),
    "frontal": Scenario(
        "frontal", "0_Parade_marchingband_1_149.jpg",
        (Key(0.0, 420, 320, 1.5), Key(0.5, 510, 320, 2.2), Key(1.0, 620, 330, 1.6)),
        "24 frontal band members, slow zoom in and out (faces 48-95 px)"),
}


@dataclasses.dataclass(frozen=True)
class Face:
    """An annotated face of the photo: ``ident`` is its index in ground_truth.json (its identity)."""

    ident: int
    box: tuple[float, float, float, float]  # x, y, w, h in photo pixels
    valid: bool


def load_faces(crowd: Path, photo: str) -> list[Face]:
    """The photo's annotated faces from ``crowd/ground_truth.json`` (invalid ones kept, flagged)."""
    truth = json.loads((Path(crowd) / "ground_truth.json").read_text())
    if photo not in truth:
        raise KeyError(f"{photo} has no entry in {crowd}/ground_truth.json")
    return [Face(i, tuple(float(v) for v in f["box"]), not f["invalid"]) for i, f in enumerate(truth[photo])]


def view_at(scenario: Scenario, t: float, seconds: float) -> tuple[float, float, float]:
    """(cx, cy, zoom) at ``t`` seconds: keyframes joined by an ease-in-out, as a camera operator would move."""
    u = min(max(t / seconds, 0.0), 1.0)
    keys = scenario.path
    for a, b in zip(keys, keys[1:]):
        if u <= b.t:
            span = max(b.t - a.t, 1e-9)
            s = (u - a.t) / span
            s = 0.5 - 0.5 * math.cos(math.pi * s)
            return (a.cx + (b.cx - a.cx) * s, a.cy + (b.cy - a.cy) * s, a.zoom + (b.zoom - a.zoom) * s)
    last = keys[-1]
    return last.cx, last.cy, last.zoom


def affine(cx: float, cy: float, zoom: float, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The 2x3 matrix taking photo pixels to frame pixels for a view centred on (cx, cy)."""
    return np.array([[zoom, 0.0, width / 2 - zoom * cx], [0.0, zoom, height / 2 - zoom * cy]], np.float64)


def frame_boxes(faces: list[Face], matrix: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, w, h of every face in frame pixels (the view only scales and shifts)."""
    boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
    zoom = matrix[0, 0]
    out = boxes * zoom
    out[:, 0] += matrix[0, 2]
    out[:, 1] += matrix[1, 2]
    return out


@dataclasses.dataclass
class Clip:
    """A rendered clip's truth. ``boxes[f]`` maps identity -> (x, y, w, h) of every face (valid or not) at least
    partly in frame ``f``; ``seen[f]`` is the set of identities counted in view in that frame (fully inside, at
    least ``min_px`` high, valid); ``people`` the identities in view for ``min_seconds`` in one stretch."""

    scenario: str
    photo: str
    fps: float
    width: int
    height: int
    boxes: list[dict[int, tuple[float, float, float, float]]]
    seen: list[set[int]]
    people: set[int]
    path: Path | None = None

    @property
    def frames(self) -> int:
        return len(self.boxes)

    @property
    def face_frames(self) -> int:
        """Face-frames of the counted people while they were in view (what a per-frame count would add up)."""
        return sum(len(s & self.people) for s in self.seen)

    def scored(self, frame: int) -> dict[int, tuple[float, float, float, float]]:
        """The boxes a tracker is scored on in ``frame``: counted people while in view."""
        return {i: self.boxes[frame][i] for i in self.seen[frame] & self.people}

    def ignored(self, frame: int) -> list[tuple[float, float, float, float]]:
        """Every other face of the frame: a track on one of these is neither a hit nor a false alarm."""
        keep = self.seen[frame] & self.people
        return [box for i, box in self.boxes[frame].items() if i not in keep]

    def write_truth(self, path: Path) -> None:
        """The truth as JSON beside the clip (``--keep``): per frame, each face's identity and box and whether the
        truth scores it there; the counted people. Boxes are x, y, w, h in frame pixels."""
        frames = [{"frame": f, "faces": [{"id": i, "box": [round(v, 1) for v in box], "scored": i in scored}
                                         for i, box in sorted(self.boxes[f].items())]}
                  for f in range(self.frames) for scored in [self.seen[f] & self.people]]
        Path(path).write_text(json.dumps({**self.summary(), "min_px": MIN_PX, "min_seconds": MIN_SECONDS,
                                          "people_ids": sorted(self.people), "frames_truth": frames}))

    def summary(self) -> dict:
        return {"scenario": self.scenario, "photo": self.photo, "frames": self.frames, "fps": self.fps,
                "seconds": round(self.frames / self.fps, 2), "size": f"{self.width}x{self.height}",
                "people": len(self.people), "visits": truth_visits(self.seen, self.fps),
                "face_frames": self.face_frames,
                "max_in_view": max((len(s & self.people) for s in self.seen), default=0)}


def truth_people(seen: list[set[int]], fps: float, min_seconds: float = MIN_SECONDS) -> set[int]:
    """Identities in ``seen`` for at least ``min_seconds`` of consecutive frames (>= ceil(min_seconds * fps))."""
    need = max(1, math.ceil(min_seconds * fps - 1e-9))
    run: dict[int, int] = {}
    people: set[int] = set()
    for present in seen:
        run = {i: run.get(i, 0) + 1 for i in present}
        people.update(i for i, n in run.items() if n >= need)
    return people


def truth_visits(seen: list[set[int]], fps: float, min_seconds: float = MIN_SECONDS) -> int:
    """Stretches of at least ``min_seconds`` in view, over all identities: a person who leaves the view and comes
    back is two visits. The tracker keeps no appearance, so re-entry is a new track on purpose; this is the
    count it can reach."""
    need = max(1, math.ceil(min_seconds * fps - 1e-9))
    run: dict[int, int] = {}
    visits = 0
    for present in [*seen, set()]:
        visits += sum(n >= need for i, n in run.items() if i not in present)
        run = {i: run.get(i, 0) + 1 for i in present}
    return visits


def in_view(boxes: np.ndarray, faces: list[Face], width: int, height: int, min_px: float) -> set[int]:
    """Identities fully inside the frame, valid, and at least ``min_px`` high."""
    x, y, w, h = boxes.T if len(boxes) else (np.zeros(0),) * 4
    inside = (x >= 0) & (y >= 0) & (x + w <= width) & (y + h <= height) & (h >= min_px)
    return {faces[i].ident for i in np.flatnonzero(inside) if faces[i].valid}


def render(crowd: Path, scenario: Scenario | str, seconds: float = 20.0, fps: float = 10.0,
           out: Path | None = None, width: int = WIDTH, height: int = HEIGHT, min_px: float = MIN_PX,
           min_seconds: float = MIN_SECONDS, keep_frames: bool = False) -> tuple[Clip, list[np.ndarray]]:
    """Render ``scenario`` to ``out`` (an .mp4, when given) and return its truth (and the frames if asked)."""
    import cv2

    scenario = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    photo = cv2.imread(str(Path(crowd) / "images" / scenario.photo), cv2.IMREAD_COLOR)
    if photo is None:
        raise FileNotFoundError(f"cannot read {Path(crowd) / 'images' / scenario.photo}")
    faces = load_faces(crowd, scenario.photo)
    writer = None
    if out is not None:
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {out} (mp4v)")
    boxes_by_frame, seen, kept = [], [], []
    try:
        for index, frame in enumerate_frames(photo, scenario, seconds, fps, width, height):
            matrix = affine(*view_at(scenario, index / fps, seconds), width, height)
            boxes = frame_boxes(faces, matrix)
            x, y, w, h = boxes.T
            partly = (x + w > 0) & (y + h > 0) & (x < width) & (y < height)
            boxes_by_frame.append({faces[i].ident: tuple(float(v) for v in boxes[i]) for i in np.flatnonzero(partly)})
            seen.append(in_view(boxes, faces, width, height, min_px))
            if writer is not None:
                writer.write(frame)
            if keep_frames:
                kept.append(frame)
    finally:
        if writer is not None:
            writer.release()
    clip = Clip(scenario.name, scenario.photo, fps, width, height, boxes_by_frame, seen,
                truth_people(seen, fps, min_seconds), Path(out) if out is not None else None)
    return clip, kept


def enumerate_frames(photo: np.ndarray, scenario: Scenario, seconds: float, fps: float, width: int,
                     height: int) -> Iterator[tuple[int, np.ndarray]]:
    """Each frame of the clip: the photo under the view's affine map (grey where the view leaves the photo)."""
    import cv2

    for index in range(int(round(seconds * fps))):
        matrix = affine(*view_at(scenario, index / fps, seconds), width, height)
        yield index, cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(96, 96, 96))
