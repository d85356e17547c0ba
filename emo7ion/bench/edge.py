"""``emo7ion bench edge``: the whole agent pipeline on real crowd photos, one thread, stage by stage.

Each frame goes through what the agent does: decode (the camera's capture), detect, crop (core.faces),
classify (core.runtime, int8), and window bookkeeping plus the outbox write and payload (publish). The
figures are per frame at the given resolutions.

:func:`compare` runs several detectors (float and int8 CenterFace) interleaved frame by frame, so that on a
shared machine they meet the same neighbours, and gives each one's time against the first's: mean, median and
each photo's fastest detect (the figure least moved by other processes).
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
        frames: int = 20, window_frames: int = 5, flip_average: bool = True,
        detectors: list[dict] | None = None, allow_unversioned: bool = False) -> list[dict]:
    """One row per resolution and detector (``detectors``, else ``detector``, else the default). With several
    detectors each frame goes through every detector's pipeline in turn before the next frame, so all of them
    meet the same load from other processes. ``flip_average`` as the agent runs; the classifier's time without
    it is measured beside it."""
    import cv2

    cv2.setNumThreads(1)
    chosen = [{**spec} for spec in (detectors or [detector or registry.DEFAULT])]
    for spec in chosen:
        if str(spec.get("type", "")).startswith("centerface"):
            spec.setdefault("threads", 1)
    found = [registry.create(spec) for spec in chosen]
    classifier = EmotionClassifier(model, num_threads=1, flip_average=flip_average, allow_unversioned=allow_unversioned)
    other = EmotionClassifier(model, num_threads=1, flip_average=not flip_average, allow_unversioned=allow_unversioned)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        outbox = Outbox(Path(scratch) / "bench-outbox.sqlite")
        for width, height in sizes:
            encoded = frames_at(images, width, height)
            windows = [WindowCounter("bench", "cam", 10.0, 3, classifier.model_id, now=time.time()) for _ in found]
            times = [{stage: [] for stage in STAGES} for _ in found]
            other_ms: list[list[float]] = [[] for _ in found]
            faces_total = [0 for _ in found]
            classifier.predict(np.zeros((1, 48, 48, 1), np.float32))  # warm-up
            for detector_now in found:
                detector_now.detect(cv2.imdecode(np.frombuffer(encoded[0], np.uint8), cv2.IMREAD_COLOR))
            for index in range(frames):
                for which, detector_now in enumerate(found):
                    t0 = time.perf_counter()
                    frame = cv2.imdecode(np.frombuffer(encoded[index % len(encoded)], np.uint8), cv2.IMREAD_COLOR)
                    t1 = time.perf_counter()
                    boxes = [(d.x, d.y, d.w, d.h) for d in detector_now.detect(frame) if d.h >= MIN_FACE_PX]
                    t2 = time.perf_counter()
                    batch = faces.prepare_faces(frame, boxes, classifier.crop_margin)
                    t3 = time.perf_counter()
                    predictions = classifier.classify(batch) if len(batch) else []
                    t4 = time.perf_counter()
                    windows[which].add_frame(predictions)
                    if (index + 1) % window_frames == 0:
                        record = windows[which].close(0, now=time.time(), early=True)
                        outbox.add("emo7ion/v1/bench/cam/counts",
                                   lambda s, r=record: messages.window_payload(dataclasses.replace(r, seq=s)))
                    t5 = time.perf_counter()
                    if len(batch):
                        other.classify(batch)
                        other_ms[which].append((time.perf_counter() - t5) * 1000)
                    faces_total[which] += len(predictions)
                    for stage, began, ended in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                        times[which][stage].append((ended - began) * 1000)
            for which, spec in enumerate(chosen):
                stage_ms = times[which]
                per_frame = sum(statistics.fmean(v) for v in stage_ms.values())
                results.append({
                    "resolution": f"{width}x{height}", "frames": frames,
                    "faces_per_frame": round(faces_total[which] / frames, 1),
                    "frames_per_second": round(1000 / per_frame, 2),
                    "faces_per_second": round(faces_total[which] / (per_frame * frames / 1000), 1),
                    "ms_per_frame": round(per_frame, 1),
                    "ms": {stage: round(statistics.fmean(v), 2) for stage, v in stage_ms.items()},
                    "detect_ms_median": round(statistics.median(stage_ms["detect"]), 2),
                    "detect_ms_floor": round(_floor(stage_ms["detect"], len(encoded)), 2),
                    "flip_average": flip_average,
                    "classify_ms_by_flip": {
                        "on" if flip_average else "off": round(statistics.fmean(stage_ms["classify"]), 2),
                        "off" if flip_average else "on": round(sum(other_ms[which]) / frames, 2)},
                    "detector": spec, "model": Path(model).name})
        outbox.close()
    return results


def _floor(detect_ms: list[float], photos: int) -> float:
    """Each photo's fastest detect (frames cycle through the photos), averaged over the photos: the figure that
    other processes on a shared machine move least."""
    return statistics.fmean(min(detect_ms[i::photos]) for i in range(min(photos, len(detect_ms))))


def detector_spec(text: str | None, shared: list[str]) -> dict:
    """Registry options from ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (options of that detector only) plus the
    ``KEY=VALUE`` texts every detector gets; None is the measured default."""
    from emo7ion.commands.edge_detect import detector_options

    name, _, own = (text or "").partition(":")
    return detector_options(name or None, shared + [part for part in own.split(",") if part.strip()])


def compare(model: str, images: list[Path], sizes: list[tuple[int, int]], detectors: list[dict], frames: int = 20,
            flip_average: bool = True, allow_unversioned: bool = False) -> list[dict]:
    """:func:`run` with the detectors interleaved frame by frame, and each one's time against the first's:
    ``detect_ratio`` (mean detect ms), ``median_ratio``, ``floor_ratio`` (each photo's fastest detect) and
    ``frame_ratio`` (mean ms per frame)."""
    rows = run(model, images, sizes, frames=frames, flip_average=flip_average, detectors=detectors,
               allow_unversioned=allow_unversioned)
    per_size = len(detectors)
    for start in range(0, len(rows), per_size):
        first = rows[start]
        for row in rows[start:start + per_size]:
            row["detect_ratio"] = round(row["ms"]["detect"] / first["ms"]["detect"], 3)
            row["median_ratio"] = round(row["detect_ms_median"] / first["detect_ms_median"], 3)
            row["floor_ratio"] = round(row["detect_ms_floor"] / first["detect_ms_floor"], 3)
            row["frame_ratio"] = round(row["ms_per_frame"] / first["ms_per_frame"], 3)
    return rows


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
            lines.append(f"{row['resolution']}: {_detector_label(row['detector'])} detect against the first "
                         f"detector's, interleaved frame by frame: mean {row['ms']['detect']:.1f} ms = "
                         f"{row['detect_ratio']:.2f}x, median {row['detect_ms_median']:.1f} ms = "
                         f"{row['median_ratio']:.2f}x, each photo's fastest {row['detect_ms_floor']:.1f} ms = "
                         f"{row['floor_ratio']:.2f}x; whole frame {row['frame_ratio']:.2f}x")
    return "\n".join(lines)


def _detector_label(options: dict) -> str:
    """``centerface-int8 upscale=1.5``: the type and the options that differ from the plugin's defaults."""
    extra = " ".join(f"{k}={v}" for k, v in options.items() if k not in ("type", "threads") and
                     registry.DEFAULT.get(k) != v)
    return f"{options.get('type', '?')}{' ' + extra if extra else ''}"
