"""``emo7ion bench edge``: the whole agent pipeline on real crowd photos, one thread, stage by stage.

Each frame goes through what the agent does: decode (the camera's capture), detect, crop (core.faces),
classify (core.runtime, int8), and window bookkeeping plus the outbox write and payload (publish). The
figures are per frame at the given resolutions.

:func:`compare` runs several detectors (float and int8 CenterFace) in turn, ``rounds`` times, and keeps each
one's fastest round: on a shared machine the slowest rounds measure the neighbours, the fastest the detector.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from emo7ion.core import faces, messages
from emo7ion.core.runtime import EmotionClassifier
from emo7ion.edge.agent import MIN_FACE_PX
from emo7ion.edge.detect import registry
from emo7ion.edge.outbox import Outbox
from emo7ion.edge.window import WindowCounter

STAGES = ("capture", "detect", "crop", "classify", "publish")


def frames_at(images: list[Path], width: int, height: int) -> list[bytes]:
    """The photos resized to width x height and JPEG-encoded, as a camera would deliver them."""
    import cv2

    encoded = []
    for path in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"cannot read image {path}")
        resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        encoded.append(cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return encoded


def run(model: str, images: list[Path], sizes: list[tuple[int, int]], detector: dict | None = None,
        frames: int = 20, window_frames: int = 5, flip_average: bool = True) -> list[dict]:
    """``flip_average`` as the agent runs; the classifier's time without it is measured beside it."""
    import cv2

    cv2.setNumThreads(1)
    detector_options = {**(detector or registry.DEFAULT)}
    if str(detector_options.get("type", "")).startswith("centerface"):
        detector_options.setdefault("threads", 1)
    found = registry.create(detector_options)
    classifier = EmotionClassifier(model, num_threads=1, flip_average=flip_average)
    other = EmotionClassifier(model, num_threads=1, flip_average=not flip_average)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        outbox = Outbox(Path(scratch) / "bench-outbox.sqlite")
        for width, height in sizes:
            encoded = frames_at(images, width, height)
            window = WindowCounter("bench", "cam", 10.0, 3, classifier.model_id, now=time.time())
            times = {stage: [] for stage in STAGES}
            other_ms = []
            faces_total = 0
            classify_once = classifier.predict(np.zeros((1, 48, 48, 1), np.float32))  # warm-up
            del classify_once
            found.detect(cv2.imdecode(np.frombuffer(encoded[0], np.uint8), cv2.IMREAD_COLOR))
            for index in range(frames):
                t0 = time.perf_counter()
                frame = cv2.imdecode(np.frombuffer(encoded[index % len(encoded)], np.uint8), cv2.IMREAD_COLOR)
                t1 = time.perf_counter()
                boxes = [(d.x, d.y, d.w, d.h) for d in found.detect(frame) if d.h >= MIN_FACE_PX]
                t2 = time.perf_counter()
                batch = faces.prepare_faces(frame, boxes, classifier.crop_margin)
                t3 = time.perf_counter()
                predictions = classifier.classify(batch) if len(batch) else []
                t4 = time.perf_counter()
                window.add_frame(predictions)
                if (index + 1) % window_frames == 0:
                    record = window.close(0, now=time.time(), early=True)
                    outbox.add("emo7ion/v1/bench/cam/counts",
                               lambda s, r=record: messages.window_payload(dataclasses.replace(r, seq=s)))
                t5 = time.perf_counter()
                if len(batch):
                    other.classify(batch)
                    other_ms.append((time.perf_counter() - t5) * 1000)
                faces_total += len(predictions)
                for stage, began, ended in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                    times[stage].append((ended - began) * 1000)
            per_frame = sum(statistics.fmean(v) for v in times.values())
            results.append({
                "resolution": f"{width}x{height}", "frames": frames, "faces_per_frame": round(faces_total / frames, 1),
                "frames_per_second": round(1000 / per_frame, 2),
                "faces_per_second": round(faces_total / (per_frame * frames / 1000), 1),
                "ms_per_frame": round(per_frame, 1),
                "ms": {stage: round(statistics.fmean(v), 2) for stage, v in times.items()},
                "flip_average": flip_average, "detect_ms_each": [round(v, 2) for v in times["detect"]],
                "photos": len(encoded),
                "classify_ms_by_flip": {
                    "on" if flip_average else "off": round(statistics.fmean(times["classify"]), 2),
                    "off" if flip_average else "on": round(sum(other_ms) / frames, 2)},
                "detector": detector_options, "model": Path(model).name})
        outbox.close()
    return results


def detector_spec(text: str | None, shared: list[str]) -> dict:
    """Registry options from ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (options of that detector only) plus the
    ``KEY=VALUE`` texts every detector gets; None is the measured default."""
    from emo7ion.commands.edge_detect import detector_options

    name, _, own = (text or "").partition(":")
    return detector_options(name or None, shared + [part for part in own.split(",") if part.strip()])


def compare(model: str, images: list[Path], sizes: list[tuple[int, int]], detectors: list[dict], frames: int = 20,
            rounds: int = 3, flip_average: bool = True) -> list[dict]:
    """:func:`run` for each detector in turn, ``rounds`` times over; per detector and resolution the round with
    the fewest ms per frame, with every round's detect ms (``detect_ms_rounds``) and, against the first
    detector, ``detect_ratio`` and ``frame_ratio`` (best round over best round). ``detect_ms_floor`` is each
    photo's fastest detect over all its frames and rounds, averaged over the photos: the figure least moved by
    other processes, and ``detect_floor_ratio`` the same against the first detector."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: must be at least 1")
    best: dict[tuple[int, str], dict] = {}
    detect_rounds: dict[tuple[int, str], list[float]] = {}
    each: dict[tuple[int, str], list[list[float]]] = {}
    for _ in range(rounds):
        for index, detector in enumerate(detectors):
            for row in run(model, images, sizes, detector, frames, flip_average=flip_average):
                key = (index, row["resolution"])
                detect_rounds.setdefault(key, []).append(row["ms"]["detect"])
                photos = each.setdefault(key, [[] for _ in range(row["photos"])])
                for frame, ms in enumerate(row["detect_ms_each"]):
                    photos[frame % row["photos"]].append(ms)
                if key not in best or row["ms_per_frame"] < best[key]["ms_per_frame"]:
                    best[key] = row
    floor = {key: statistics.fmean(min(times) for times in photos if times) for key, photos in each.items()}
    results = []
    for resolution in (f"{width}x{height}" for width, height in sizes):
        first = best[(0, resolution)]
        for index in range(len(detectors)):
            row = best[(index, resolution)]
            results.append({**row, "rounds": rounds, "detect_ms_rounds": detect_rounds[(index, resolution)],
                            "detect_ratio": round(row["ms"]["detect"] / first["ms"]["detect"], 3),
                            "frame_ratio": round(row["ms_per_frame"] / first["ms_per_frame"], 3),
                            "detect_ms_floor": round(floor[(index, resolution)], 2),
                            "detect_floor_ratio": round(floor[(index, resolution)] / floor[(0, resolution)], 3)})
    return results


def table(results: list[dict]) -> str:
    several = len({_detector_label(row["detector"]) for row in results}) > 1
    width = max((len(_detector_label(row["detector"])) for row in results), default=8) if several else 0
    head = (f"{'detector':<{width}} " if several else "") + \
        f"{'resolution':>11} {'fps':>6} {'faces/s':>8} {'faces/fr':>9} {'ms/frame':>9} " + \
        " ".join(f"{s:>9}" for s in STAGES)
    lines = [head, "-" * len(head)]
    for row in results:
        lines.append((f"{_detector_label(row['detector']):<{width}} " if several else "") +
                     f"{row['resolution']:>11} {row['frames_per_second']:>6.2f} {row['faces_per_second']:>8.1f} "
                     f"{row['faces_per_frame']:>9.1f} {row['ms_per_frame']:>9.1f} "
                     + " ".join(f"{row['ms'][s]:>9.2f}" for s in STAGES))
    for row in results:
        by_flip = row["classify_ms_by_flip"]
        lines.append(f"{row['resolution']}: classify {by_flip['off']:.2f} ms/frame one pass, "
                     f"{by_flip['on']:.2f} ms/frame with flip averaging (+{by_flip['on'] - by_flip['off']:.2f} ms, "
                     f"{100 * (by_flip['on'] - by_flip['off']) / row['ms_per_frame']:.1f}% of a frame); "
                     f"the pipeline above runs flip {'on' if row['flip_average'] else 'off'}")
        if several and "detect_ratio" in row:
            lines.append(f"{row['resolution']}: {_detector_label(row['detector'])} detects in "
                         f"{row['detect_ratio']:.2f}x the first detector's time ({row['frame_ratio']:.2f}x per "
                         f"frame), best of {row['rounds']} round(s); detect ms per round "
                         f"{', '.join(f'{v:.1f}' for v in row['detect_ms_rounds'])}; each photo's fastest "
                         f"detect, averaged: {row['detect_ms_floor']:.1f} ms = {row['detect_floor_ratio']:.2f}x")
    return "\n".join(lines)


def _detector_label(options: dict) -> str:
    """``centerface-int8 upscale=1.5``: the type and the options that differ from the plugin's defaults."""
    extra = " ".join(f"{k}={v}" for k, v in options.items() if k not in ("type", "threads") and
                     registry.DEFAULT.get(k) != v)
    return f"{options.get('type', '?')}{' ' + extra if extra else ''}"
