"""Recorded events: a real mp4 analysed frame by frame in video time by the real agent (real detector, the shipped
int8 classifier), to a windows file without a broker, and to a real Mosquitto and aggregator."""

import datetime as dt
import json
import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from emo7ion import cli
from emo7ion.core import messages
from emo7ion.edge import config as edge_config
from emo7ion.edge import recording
from emo7ion.edge.agent import Agent
from emo7ion.edge.sinks import WindowList, read_windows
from emo7ion.edge.sources.video import VideoFileSource
from emo7ion.edge.window import WindowCounter
from helpers import SHARED, LiveAggregator, stored_keys, wait_until

PARADE = SHARED / "data" / "crowd-sample" / "images" / "0_Parade_marchingband_1_149.jpg"
SHIPPED_INT8 = Path(__file__).resolve().parents[1] / "models" / "emo7ion-edge-int8.tflite"
FPS, SECONDS = 5, 20
FRAMES = FPS * SECONDS

pytestmark = pytest.mark.skipif(not PARADE.is_file(), reason=f"crowd sample photo not found at {PARADE}")


def write_clip(path: Path, fps: float, frames: int) -> Path:
    """A real mp4 (mp4v) of the front row of a marching band: four real faces of ~37 px (enlarged 1.28x from the
    photo's ~29 px, past the 32 px a face needs to count as a person), nudged a pixel a frame. Small on purpose:
    every frame is analysed, and the suite runs on two cores."""
    row = cv2.resize(cv2.imread(str(PARADE))[195:300, 195:445], (320, 134), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (row.shape[1], row.shape[0]))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for index in range(frames):
        writer.write(np.roll(row, index % 3, axis=1))
    writer.release()
    return path


def frames_in(path: Path) -> int:
    """Frames in the file, counted by decoding it: what 'every frame' is measured against."""
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.grab():
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "event.mp4", FPS, FRAMES)


def settings(clip: Path, **top) -> dict:
    return {"venue": "hall-a", "camera": "event-cam", "model": str(SHIPPED_INT8), "window_s": 5.0,
            "flip_average": False, "source": {"kind": "video", "path": str(clip)}, **top}


def seconds(moment: dt.datetime) -> float:
    return moment.timestamp()


def test_every_frame_in_video_time_to_a_file_without_a_broker(tmp_path, clip):
    out = tmp_path / "windows.jsonl"
    config = edge_config.load(None, settings(clip, out=str(out), outbox={"path": str(tmp_path / "o.sqlite")}),
                              environ={})
    assert config.broker.url == "", "--out without a broker named anywhere: no broker"
    collected = WindowList()
    before = time.time()
    agent = Agent(config, sinks=[collected])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive(), "the agent did not stop at the end of the file"
    assert agent.publisher is None and agent.outbox is None
    assert not (tmp_path / "o.sqlite").exists(), "no broker: no outbox either"

    windows = collected.windows
    assert len(windows) == 4, [(w.start, w.end) for w in windows]  # --window 5 over 20 s of video
    assert sum(w.frames for w in windows) == agent.stats.frames == frames_in(clip) == FRAMES
    assert [w.frames for w in windows] == [FRAMES // 4] * 4
    assert [w.seq for w in windows] == [0, 1, 2, 3]
    for earlier, later in zip(windows, windows[1:]):
        assert earlier.end == later.start
    lengths = [seconds(w.end) - seconds(w.start) for w in windows]
    assert lengths == pytest.approx([5.0] * 4, abs=0.002)
    # the clip is taken to end when its analysis starts (edge/recording.py), not when it ends
    assert before - 1 <= seconds(windows[-1].end) <= before + 60
    assert seconds(windows[-1].end) < time.time() - 0.5 * agent.stats.busy_s
    assert sum(w.faces for w in windows) == agent.stats.faces >= 3 * FRAMES
    assert all(w.people is not None and not w.withheld for w in windows)

    lines = out.read_bytes().splitlines()
    assert lines == [payload for _, payload in collected.payloads], "the file holds exactly the published bytes"
    assert read_windows(out) == windows
    for line in lines:
        assert isinstance(messages.parse(messages.camera_topic("hall-a", "event-cam", "counts"), line),
                          messages.Window)


def test_cli_window_longer_than_the_clip_recorded_at_and_no_connection(tmp_path, clip, capsys, caplog):
    """`emo7ion edge run --source event.mp4 --window 60 --out FILE`: one window of every frame, dated from
    --recorded-at; with no broker named, nothing tries to connect (no outbox, no broker in the log). Run twice,
    the files are the same bytes: a recording with --recorded-at is a reproducible benchmark."""
    caplog.set_level(logging.INFO)
    outbox = tmp_path / "o.sqlite"
    first = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    reports = [tmp_path / "report.jsonl", tmp_path / "again.jsonl"]
    for out in reports:
        code = cli.main(["edge", "run", "--venue", "hall-a", "--camera", "event-cam", "--source", str(clip),
                         "--window", "60", "--out", str(out), "--model", str(SHIPPED_INT8), "--outbox", str(outbox),
                         "--flip-average", "false", "--recorded-at", first.isoformat().replace("+00:00", "Z"),
                         "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        totals = json.loads(captured.out.splitlines()[-1])
        assert totals["frames"] == FRAMES and totals["windows"] == 1 and totals["faces"] >= 3 * FRAMES
    [window] = read_windows(reports[0])
    assert window.frames == FRAMES and window.start == first
    assert seconds(window.end) - seconds(window.start) == pytest.approx(SECONDS, abs=0.002)
    assert reports[0].read_bytes() == reports[1].read_bytes()
    assert not outbox.exists()
    assert "running" in caplog.text  # the agent's log is here, and a connection attempt would be too
    assert "1883" not in caplog.text and "broker" not in caplog.text.lower() and "connect" not in caplog.text


def zeroed_frames(path: Path) -> Path:
    """The clip with every byte of its frame data zeroed: the container opens, not one frame decodes."""
    data = bytearray(write_clip(path, FPS, 10).read_bytes())
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at - 4 + size] = bytes(size - 8)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", ["missing", "damaged", "undecodable", "future"])
def test_a_video_the_agent_cannot_use_is_one_line_and_status_2(tmp_path, clip, capsys, case):
    source = {"missing": tmp_path / "nowhere.mp4", "damaged": tmp_path / "damaged.mp4",
              "undecodable": tmp_path / "zeroed.mp4"}.get(case, clip)
    if case == "damaged":
        source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))  # an mp4 header, then nothing decodable
    if case == "undecodable":
        zeroed_frames(source)
    extra = ["--recorded-at", (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()] if case == "future" else []
    started = time.monotonic()
    code = cli.main(["edge", "run", "--venue", "hall-a", "--camera", "event-cam", "--source", str(source),
                     "--out", str(tmp_path / "w.jsonl"), "--model", str(SHIPPED_INT8), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert time.monotonic() - started < 30, "no reopening loop"
    lines = [line for line in err.splitlines() if line.startswith("emo7ion edge: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    expected = {"missing": "no such video file", "damaged": "cannot be read", "undecodable": "not one frame",
                "future": "in the future"}[case]
    assert expected in lines[0] and (case == "future" or str(source) in lines[0])


def test_a_recording_published_like_a_camera_is_stored_by_a_real_aggregator(tmp_path, clip):
    live = LiveAggregator(tmp_path)
    try:
        out = tmp_path / "windows.jsonl"
        config = edge_config.load(None, settings(
            clip, out=str(out), broker={"url": f"mqtt://127.0.0.1:{live.broker.port}"},
            outbox={"path": str(tmp_path / "outbox.sqlite")}), environ={})
        windows = recording.analyse(config)
        assert len(windows) == 4
        assert live.wait_stored(4, timeout=30), dict(live.service.ingest.stats.rejected)
        assert wait_until(lambda: live.service.ingest.stats.stored == 4, 2)
        assert not live.service.ingest.stats.rejected, "a real aggregator's plausibility checks accept them"
    finally:
        live.close()
    assert stored_keys(tmp_path / "agg.sqlite") == [("hall-a", "event-cam", seq) for seq in range(4)]
    assert [w.seq for w in read_windows(out)] == [0, 1, 2, 3]


def test_video_source_dates_every_frame_and_thins_only_above_max_fps(tmp_path):
    fast = write_clip(tmp_path / "fast.mp4", 60, 30)  # half a second at 60 fps
    every = VideoFileSource(str(fast), max_fps=0)
    every.open()
    stamps = []
    while every.read() is not None:
        stamps.append(every.timestamp)
    assert every.exhausted and len(stamps) == 30 and every.duration == pytest.approx(0.5)
    assert stamps == pytest.approx([i / 60 for i in range(30)], abs=1e-3)
    assert every.end == pytest.approx(0.5, abs=1e-3)
    capped = VideoFileSource(str(fast), max_fps=30)
    capped.open()
    kept = []
    while capped.read() is not None:
        kept.append(capped.timestamp)
    assert kept == pytest.approx([i / 30 for i in range(15)], abs=1e-3)  # evenly: every second frame


def test_windows_count_from_the_first_frame_wherever_it_falls():
    first = 1_764_698_597.123  # 18:03:17.123 UTC: not on any window grid
    counter = WindowCounter("v", "c", 60.0, 3, {"sha256": "0" * 64, "version": "t"})
    counter.restart(first, anchor=first)
    assert (counter.start, counter.end) == (first, first + 60.0)
    assert not counter.due(first + 20.0)
    record = counter.close(seq=0, now=first + 20.0, early=True)
    assert seconds(record.end) - seconds(record.start) == pytest.approx(20.0)
    counter.restart(first, anchor=first)
    for k in range(1, 500):  # boundaries far from the anchor still land on the grid, never a zero-length window
        counter.close(seq=0, now=counter.end)
        assert counter.end - counter.start == pytest.approx(60.0) and counter.start == pytest.approx(first + 60 * k)


def test_live_sources_keep_their_kind_and_a_looped_video_is_a_live_camera(tmp_path, clip):
    from emo7ion.edge.sources.capture import infer_source, make_source

    assert infer_source("0")["kind"] == "opencv" and infer_source("rtsp://cam/1")["kind"] == "opencv"
    assert infer_source(str(clip)) == {"kind": "video", "path": str(clip)}
    recorded = edge_config.load(None, settings(clip, out="x.jsonl"), environ={}).source
    looped = edge_config.load(None, settings(clip, out="x.jsonl", source={"kind": "video", "path": str(clip),
                                                                         "loop": True}), environ={}).source
    assert make_source(recorded).recorded and not make_source(looped).recorded
    nowhere = edge_config.load(None, settings(clip, broker={"url": ""}), environ={})
    with pytest.raises(edge_config.ConfigError, match="no broker and no --out"):
        Agent(nowhere)
    in_memory = Agent(nowhere, sinks=[WindowList()])  # what recording.analyse builds: no broker, no outbox
    assert in_memory.recording and in_memory.publisher is None and in_memory.outbox is None
    in_memory.capture.source.close()
    with pytest.raises(edge_config.ConfigError, match="time zone"):
        edge_config.load(None, settings(clip, out="x", source={"kind": "video", "path": str(clip),
                                                              "recorded_at": "2026-12-02T18:00:00"}), environ={})
