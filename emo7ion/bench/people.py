"""``emo7ion bench people``: the agent's head counts on clips whose people are known.

Each clip is rendered from an annotated crowd photo (``clips``: a virtual camera pans and zooms, every valid
face is a person with a known identity) and written to an mp4; the real agent then analyses that file as a
recording, every frame in video time, and writes its windows like ``emo7ion edge run --source clip.mp4 --out
windows.jsonl``. Per clip and setting (detector, ``detect_every``) the bench reports:

- people: the windows' ``entered`` summed (a person is counted in the first window it appears in; with one
  window as long as the clip this is its ``people``), against the clip's truth;
- face-frames (the windows' ``faces``) against people: what counting detections would have claimed;
- IDF1, tracks per person and identity switches: whether one track followed one person (``idf1``). This reads
  the tracker's in-memory track numbers inside this process; they are never published;
- milliseconds per frame by stage (detect, track, classify incl. the crops), as thread CPU time (what the
  frame costs, little changed by other processes on the machine) and as wall time.

Timing wraps the agent's own detector and tracker objects with a stopwatch; nothing of the pipeline is
replaced.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from emo7ion.bench import clips, idf1

log = logging.getLogger(__name__)

STAGES = ("detect", "track", "classify")
DETECTORS = ("centerface", "centerface-int8")


@dataclasses.dataclass(frozen=True)
class Setting:
    detector: str = "centerface"
    detect_every: int = 1

    @property
    def name(self) -> str:
        return f"{self.detector} every {self.detect_every}" if self.detect_every > 1 else self.detector


class _Recorder:
    """Stopwatches around the agent's detector and tracker, and the boxes of each frame's tracks."""

    def __init__(self, agent, tick: Callable[[], None] | None = None):
        self.tick = tick
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self.wall = dict.fromkeys(STAGES, 0.0)
        self.frames: list[dict] = []  # per analysed frame: track object -> box
        self.tracks: dict[int, object] = {}
        detector, tracker = agent.detector, agent.tracker
        detector.detect = self._timed("detect", detector.detect)
        update, carried = tracker.update, tracker.carried

        def record_update(boxes, ts):
            assigned, ended = self._timed("track", update)(boxes, ts)
            self._frame(zip(assigned, boxes))
            return assigned, ended

        def record_carried(ts, *args):
            kept = self._timed("track", carried)(ts, *args)
            self._frame(kept)
            return kept

        tracker.update, tracker.carried = record_update, record_carried

    def _timed(self, stage: str, call: Callable) -> Callable:
        def timed(*args, **kwargs):
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.cpu[stage] += time.thread_time() - cpu
                self.wall[stage] += time.perf_counter() - wall
        return timed

    def _frame(self, pairs) -> None:
        frame = {}
        for track, box in pairs:
            self.tracks[track.number] = track
            frame[track.number] = tuple(float(v) for v in box)
        self.frames.append(frame)
        if self.tick:
            self.tick()

    def counted_tracks(self) -> list[dict]:
        """Per frame, the boxes of the tracks that counted as a person in some window (the people the windows
        report); the rest (a stray detection, a face seen for two frames) did not claim anyone."""
        return [{n: box for n, box in frame.items() if self.tracks[n].counted} for frame in self.frames]


def breakdown(clip: clips.Clip, frames: list[dict]) -> dict:
    """What each counted track was: it is given the annotated face (any, counted by the truth or not) its box
    overlapped at IoU >= 0.5 in most of its frames. ``found``: truth people with a track of their own; ``extra``:
    further tracks of those people (fragments); ``uncounted_faces``: tracks on faces the truth leaves out (under
    32 px, partly outside the frame, in view under 1 s, marked invalid); ``no_face``: tracks on no annotated face."""
    import numpy as np

    votes: dict[int, dict[int | None, int]] = {}
    for index, tracked in enumerate(frames):
        if not tracked:
            continue
        numbers = list(tracked)
        ids = list(clip.boxes[index])
        if ids:
            overlap = idf1.iou(np.array([tracked[n] for n in numbers]), np.array([clip.boxes[index][i] for i in ids]))
            best = overlap.argmax(axis=1)
            owners = [ids[b] if overlap[row, b] >= idf1.IOU else None for row, b in enumerate(best)]
        else:
            owners = [None] * len(numbers)
        for number, owner in zip(numbers, owners):
            tally = votes.setdefault(number, {})
            tally[owner] = tally.get(owner, 0) + 1
    owner_of = {n: max(t, key=t.get) for n, t in votes.items()}
    on_people = [o for o in owner_of.values() if o is not None and o in clip.people]
    found = set(on_people)
    return {"found": len(found), "missed": len(clip.people - found), "extra": len(on_people) - len(found),
            "uncounted_faces": sum(o is not None and o not in clip.people for o in owner_of.values()),
            "no_face": sum(o is None for o in owner_of.values())}


def analyse(clip: clips.Clip, setting: Setting, model: str, window_s: float, workdir: Path,
            tick: Callable[[], None] | None = None) -> dict:
    """The real agent over ``clip.path`` with ``setting``; its windows, counts, IDF1 and stage times."""
    import cv2

    from emo7ion.edge import config as edge_config
    from emo7ion.edge.agent import Agent
    from emo7ion.edge.sinks import read_windows

    cv2.setNumThreads(1)
    out = workdir / f"{clip.scenario}-{setting.detector}-every{setting.detect_every}.jsonl"
    config = edge_config.load(None, {
        "venue": "bench", "camera": clip.scenario.replace("_", "-"), "model": model, "window_s": window_s,
        "detect_every": setting.detect_every, "detector": {"type": setting.detector, "threads": 1},
        "source": {"kind": "video", "path": str(clip.path)}, "out": str(out),
        "outbox": {"path": str(workdir / "unused-outbox.sqlite")}}, environ={})
    agent = Agent(config)
    recorder = _Recorder(agent, tick)
    classify = agent.classifier.classify
    classify_cpu_s = [0.0]

    def timed_classify(batch):
        began = time.thread_time()
        try:
            return classify(batch)
        finally:
            classify_cpu_s[0] += time.thread_time() - began

    agent.classifier.classify = timed_classify
    cpu, wall = time.thread_time(), time.perf_counter()
    stats = agent.run()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if stats.frame_errors:
        raise RuntimeError(f"{stats.frame_errors} frame(s) failed in the agent (its log says why)")
    windows = read_windows(out)
    frames = stats.frames
    if frames != clip.frames or len(recorder.frames) != frames:
        raise RuntimeError(f"the agent analysed {frames} frames ({len(recorder.frames)} tracked) of {clip.frames}")
    counted_frames = recorder.counted_tracks()
    score = idf1.score([clip.scored(f) for f in range(frames)], counted_frames,
                       [clip.ignored(f) for f in range(frames)])
    parts = breakdown(clip, counted_frames)
    large: dict[int, int] = {}
    for tracked in counted_frames:
        for number, (_, _, _, height) in tracked.items():
            large[number] = large.get(number, 0) + (height >= clips.MIN_PX)
    people_32 = sum(n >= config.track.min_frames for n in large.values())
    counted = sum(w.entered for w in windows)
    truth = len(clip.people)
    visits = clips.truth_visits(clip.seen, clip.fps)
    faces = sum(w.faces for w in windows)
    recorder.cpu["classify"] = classify_cpu_s[0]  # the classifier alone; the crops are in "other"
    return {
        "clip": clip.scenario, "setting": setting.name, "detector": setting.detector,
        "detect_every": setting.detect_every, "frames": frames, "windows": len(windows),
        "truth_people": truth, "people": counted, "people_ratio": round(counted / truth, 3) if truth else None,
        "truth_visits": visits, "visits_ratio": round(counted / visits, 3) if visits else None,
        "people_per_window": [w.people for w in windows], "entered_per_window": [w.entered for w in windows],
        "withheld": [w.withheld for w in windows],
        "people_if_32px": people_32,
        "face_frames": faces, "face_frames_per_person": round(faces / counted, 1) if counted else None,
        "truth_face_frames": clip.face_frames, "in_view": round(faces / frames, 2) if frames else 0.0,
        "truth_in_view": round(clip.face_frames / frames, 2) if frames else 0.0,
        "tracks": len(recorder.tracks), "counted_tracks": sum(t.counted for t in recorder.tracks.values()),
        "idf1": score.as_dict(), "tracks_were": parts,
        "cpu_ms": {**{s: round(1000 * recorder.cpu[s] / frames, 2) for s in STAGES},
                   "other": round(1000 * (cpu - sum(recorder.cpu.values())) / frames, 2),
                   "total": round(1000 * cpu / frames, 2)},
        "wall_ms": {**{s: round(1000 * recorder.wall[s] / frames, 2) for s in ("detect", "track")},
                    "crop_classify": round(1000 * stats.classify_s / frames, 2),
                    "total": round(1000 * wall / frames, 2)},
        "windows_file": str(out)}


def run(crowd: Path, scenarios: list[str], settings: list[Setting], seconds: float = 20.0, fps: float = 10.0,
        window_s: float | None = None, model: str | None = None, workdir: Path | None = None,
        bar=None) -> dict:
    """Render each scenario once, run each setting over it; ``window_s`` defaults to one window per clip.
    ``bar``: a tqdm-like progress bar (``set_description``, ``update``) counting analysed frames."""
    from emo7ion.core.service.resources import shipped_model

    model = str(model or shipped_model())
    logging.getLogger("emo7ion.edge").setLevel(logging.WARNING)  # a line per window and run would break the bar
    window_s = window_s or max(1.0, float(seconds) + 1.0)
    rows, rendered = [], []
    with tempfile.TemporaryDirectory(prefix="bench-people-") as scratch:
        folder = Path(workdir) if workdir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for scenario in scenarios:
            clip, _ = clips.render(crowd, scenario, seconds, fps, out=folder / f"{scenario}.mp4")
            rendered.append(clip.summary())
            if workdir:
                clip.write_truth(folder / f"{scenario}-truth.json")
            for setting in settings:
                if bar is not None:
                    bar.set_description(f"{scenario}: {setting.name}")
                rows.append(analyse(clip, setting, model, window_s, folder, bar.update if bar is not None else None))
        if not workdir:
            for row in rows:
                row.pop("windows_file")
    return {"clips": rendered, "rows": rows, "window_s": window_s, "model": Path(model).name,
            "ratios": ratios(rows)}


def ratios(rows: list[dict]) -> list[dict]:
    """Per clip, each setting's CPU time and people count against float CenterFace detecting every frame."""
    out = []
    for clip in dict.fromkeys(r["clip"] for r in rows):
        base = next((r for r in rows if r["clip"] == clip and r["detector"] == "centerface"
                     and r["detect_every"] == 1), None)
        if base is None:
            continue
        for r in rows:
            if r["clip"] != clip or r is base:
                continue
            out.append({"clip": clip, "setting": r["setting"],
                        "time_vs_float": round(r["cpu_ms"]["total"] / base["cpu_ms"]["total"], 3),
                        "detect_vs_float": round(r["cpu_ms"]["detect"] / base["cpu_ms"]["detect"], 3),
                        "people_vs_float": round(r["people"] / base["people"], 3) if base["people"] else None})
    return out


def table(result: dict) -> str:
    lines = [f"{'clip':>10} {'frames':>6} {'people':>6} {'visits':>6} {'face-frames':>11} {'max in view':>11}  photo"]
    for c in result["clips"]:
        lines.append(f"{c['scenario']:>10} {c['frames']:>6} {c['people']:>6} {c['visits']:>6} {c['face_frames']:>11} "
                     f"{c['max_in_view']:>11}  {c['photo']}")
    lines.append("truth: valid annotated faces fully in view at >= 32 px for >= 1 s in one stretch; visits: such "
                 "stretches (one who leaves the view and comes back is two: the tracker has no appearance, on purpose)")
    lines.append("")
    head = (f"{'clip':>10} {'setting':>26} {'people':>6} {'truth':>5} {'x truth':>7} {'x visits':>8} {'p@32px':>6} "
            f"{'face-fr':>7} "
            f"{'ff/pers':>7} {'IDF1':>5} {'trk/pers':>8} {'switch':>6}")
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(
            f"{r['clip']:>10} {r['setting']:>26} {r['people']:>6} {r['truth_people']:>5} {r['people_ratio']:>7.2f} "
            f"{r['visits_ratio']:>8.2f} "
            f"{r['people_if_32px']:>6} {r['face_frames']:>7} {r['face_frames_per_person'] or 0:>7.1f} "
            f"{r['idf1']['idf1']:>5.2f} {r['idf1']['tracks_per_person']:>8.2f} {r['idf1']['switches']:>6}")
    lines.append("people: the windows' entered, summed (one window per clip: its people); p@32px: counted tracks whose "
                 "face was >= 32 px high in >= track.min_frames frames (the truth's size rule; not an agent setting)")
    lines.append("")
    lines.append(f"{'clip':>10} {'setting':>26} {'people':>6} = {'found':>5} + {'extra':>5} + {'uncounted':>9} + "
                 f"{'no face':>7}   {'missed':>6}")
    for r in result["rows"]:
        p = r["tracks_were"]
        lines.append(f"{r['clip']:>10} {r['setting']:>26} {r['people']:>6} = {p['found']:>5} + {p['extra']:>5} + "
                     f"{p['uncounted_faces']:>9} + {p['no_face']:>7}   {p['missed']:>6}")
    lines.append("found: truth people with a track; extra: their further tracks (fragments); uncounted: tracks on "
                 "faces the truth leaves out (< 32 px, partly outside, < 1 s, invalid); no face: on no annotated face "
                 "(WIDER FACE leaves many half-hidden faces unannotated); missed: truth people with no counted track")
    lines.append("")
    head = f"{'clip':>10} {'setting':>26} " + " ".join(f"{s:>8}" for s in (*STAGES, "other", "total")) + \
        f" {'wall':>8} {'x float':>7} {'detect x':>8}"
    lines += [head, "-" * len(head)]
    ratio = {(r["clip"], r["setting"]): r for r in result["ratios"]}
    for r in result["rows"]:
        ms = r["cpu_ms"]
        vs = ratio.get((r["clip"], r["setting"]))
        lines.append(f"{r['clip']:>10} {r['setting']:>26} " + " ".join(f"{ms[s]:>8.1f}" for s in (*STAGES, "other",
                     "total")) + f" {r['wall_ms']['total']:>8.1f} " +
                     (f"{vs['time_vs_float']:>7.2f} {vs['detect_vs_float']:>8.2f}" if vs else f"{'':>7} {'':>8}"))
    lines.append("ms per frame in thread CPU time, one thread (classify: the classifier incl. flip averaging; other: "
                 "crops, windows, decoding the mp4); wall: elapsed per frame on this machine, whatever else runs; "
                 "x float: total against float CenterFace detecting every frame, same clip")
    return "\n".join(lines)
