"""edge/window: aligned windows, early close, and privacy withholding."""

from emo7ion.core import messages
from emo7ion.core.runtime import Prediction
from emo7ion.edge.window import WindowCounter, window_bounds

MODEL = {"sha256": "ab" * 32, "version": "test"}


def test_windows_align_to_the_grid():
    assert window_bounds(1003.2, 10) == (1000, 1010)
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=1003.2)
    assert (counter.start, counter.end) == (1003.2, 1010)  # the first window starts when observing starts
    counter.add_frame([Prediction("happy", 0.9)])
    assert not counter.due(1009.9) and counter.due(1010.0)
    record = counter.close(seq=4, now=1010.05)
    assert record.start.timestamp() == 1003.2 and record.end.timestamp() == 1010
    assert (counter.start, counter.end) == (1010, 1020)
    counter.close(seq=5, now=1047.0)  # a stall of several windows: the next one starts now, not in the past
    assert (counter.start, counter.end) == (1047.0, 1050)


def test_counts_and_confidence():
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0)
    counter.add_frame([Prediction("happy", 0.8), Prediction("sad", 0.6)])
    counter.add_frame([Prediction("happy", 1.0)])
    record = counter.close(seq=0, now=10)
    assert record.frames == 2 and record.faces == 3
    assert record.counts["happy"] == 2 and record.counts["sad"] == 1 and sum(record.counts.values()) == 3
    assert abs(record.mean_confidence - 0.8) < 1e-9
    parsed = messages.parse("emo7ion/v1/v/c/counts", messages.window_payload(record))
    assert parsed.counts == record.counts


def test_small_windows_withhold_counts():
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0)
    counter.add_frame([Prediction("angry", 0.99), Prediction("happy", 0.5)])
    record = counter.close(seq=0, now=10)
    assert record.withheld and record.counts is None and record.mean_confidence is None
    assert record.faces == 2 and record.frames == 1
    payload = messages.window_payload(record)
    assert b"angry" not in payload and b"happy" not in payload


def test_early_close_on_shutdown():
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=100)
    counter.add_frame([])
    record = counter.close(seq=1, now=104.5, early=True)
    assert record.end.timestamp() == 104.5
