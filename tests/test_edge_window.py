"""edge/window: aligned windows, early close, people and their votes, and privacy withholding by people."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emo7ion.core import emotions, messages
from emo7ion.core.runtime import Prediction
from emo7ion.edge.track import Track
from emo7ion.edge.window import WindowCounter, window_bounds

MODEL = {"sha256": "ab" * 32, "version": "test"}


def track(number: int, first_ts: float = 0.0, last_ts: float = 0.0) -> Track:
    return Track(number, np.array([10.0 * number, 0, 20, 20]), first_ts, last_ts)


def said(label: str, p: float = 0.9, other: str = "neutral") -> Prediction:
    """A prediction of ``label`` with probability ``p``, the rest on ``other``."""
    probabilities = np.zeros(emotions.NUM_CLASSES)
    probabilities[emotions.LABELS.index(label)] = p
    probabilities[emotions.LABELS.index(other)] += 1 - p
    return Prediction(label, p, probabilities)


def parsed(record: messages.Window) -> messages.Window:
    return messages.parse("emo7ion/v1/v/c/counts", messages.window_payload(record))


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


def test_one_vote_per_person_from_the_mean_of_their_probabilities():
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0, min_track_frames=3)
    people = [track(0), track(1), track(2)]
    # Person 0: happy once by far, then sad twice by a hair: face-frames say sad 2:1, the mean says happy.
    frames = [[said("happy", 0.9, "sad"), said("sad", 0.8), said("angry", 0.7)],
              [said("sad", 0.55, "happy"), said("sad", 0.8), said("angry", 0.7)],
              [said("sad", 0.55, "happy"), said("sad", 0.8), said("angry", 0.7)]]
    for predictions in frames:
        counter.add_frame(predictions, people)
    record = counter.close(seq=0, now=10)
    assert (record.frames, record.faces, record.people, record.entered, record.in_view) == (3, 9, 3, 3, 3.0)
    assert record.counts["sad"] == 5 and record.counts["happy"] == 1 and record.counts["angry"] == 3
    assert record.votes == {**dict.fromkeys(emotions.LABELS, 0), "happy": 1, "sad": 1, "angry": 1}
    assert abs(record.mean_confidence - sum(p.confidence for f in frames for p in f) / 9) < 1e-9
    assert (record.ended, record.dwell_s) == (0, None)
    back = parsed(record)
    assert (back.people, back.entered, back.votes, back.counts) == (3, 3, record.votes, record.counts)


def test_fewer_than_min_people_withholds_every_emotion_figure():
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0, min_track_frames=1)
    for _ in range(5):
        counter.add_frame([said("angry", 0.99), said("happy", 0.5)], [track(0), track(1)])
    record = counter.close(seq=0, now=10)
    assert record.withheld and record.counts is None and record.votes is None and record.mean_confidence is None
    assert (record.faces, record.frames, record.people, record.entered, record.in_view) == (10, 5, 2, 2, 2.0)
    payload = messages.window_payload(record)
    assert b"angry" not in payload and b"happy" not in payload
    assert parsed(record).people == 2


def test_one_person_split_into_many_tracks_never_counts_as_three():
    """A face that flickers or jumps can become a new track every few frames: five tracks, one face at a time.
    ``people`` says 5 (it counts tracks), but the privacy rule counts people seen together in one frame: 1."""
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0, min_track_frames=3)
    for number in range(5):
        for _ in range(3):
            counter.add_frame([said("happy")], [track(number)])
    record = counter.close(seq=0, now=10)
    assert record.people == 5 and counter.people_in_one_frame({0, 1, 2, 3, 4}) == 0  # reset for the next window
    assert record.withheld and record.counts is None and record.votes is None


def test_three_people_together_in_one_frame_share():
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0, min_track_frames=2)
    a, b, c = track(0), track(1), track(2)
    for predictions, tracks in [([said("happy")] * 2, [a, b]), ([said("happy")] * 2, [b, c]),
                                ([said("happy")] * 3, [a, b, c])]:
        counter.add_frame(predictions, tracks)
    assert not counter.close(seq=0, now=10).withheld
    # the same people never all at once: withheld, although three tracks counted
    counter = WindowCounter("v", "c", 10, 3, MODEL, now=0, min_track_frames=2)
    for predictions, tracks in [([said("happy")] * 2, [a, b]), ([said("happy")] * 2, [b, c]),
                                ([said("happy")] * 2, [a, c])]:
        counter.add_frame(predictions, tracks)
    record = counter.close(seq=0, now=10)
    assert record.people == 3 and record.withheld


def test_a_track_with_too_few_frames_is_not_a_person():
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=0, min_track_frames=3)
    counter.add_frame([said("happy"), said("sad")], [track(0), track(1)])
    counter.add_frame([said("happy")], [track(0)])
    counter.add_frame([said("happy")], [track(0)])
    record = counter.close(seq=0, now=10)
    assert record.people == 1 and record.faces == 4 and record.votes["happy"] == 1 and sum(record.votes.values()) == 1


def test_a_person_spanning_two_windows_is_counted_in_each_and_enters_once():
    counter = WindowCounter("v", "c", 10, 1, MODEL, now=0, min_track_frames=3)
    lingering = track(0, first_ts=7.0)
    for _ in range(3):
        counter.add_frame([said("happy")], [lingering])
    first = counter.close(seq=0, now=10)
    for _ in range(4):
        counter.add_frame([said("sad")], [lingering])
    second = counter.close(seq=1, now=20)
    for _ in range(2):  # too few frames in the third window: not counted there
        counter.add_frame([said("sad")], [lingering])
    third = counter.close(seq=2, now=30)
    assert (first.people, first.entered, first.votes["happy"]) == (1, 1, 1)
    assert (second.people, second.entered, second.votes["sad"]) == (1, 0, 1)  # it votes in each window, as it is then
    assert (third.people, third.entered) == (0, 0)
    assert sum(w.entered for w in (first, second, third)) == 1


def test_dwell_is_the_median_time_in_view_of_the_people_who_left():
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=0, min_track_frames=2)
    stayed = [track(0, 0.0, 4.0), track(1, 1.0, 2.0), track(2, 0.0, 9.0)]
    glimpse = track(3, 5.0, 5.0)  # one frame: never a person, so not among those who left
    counter.add_frame([said("happy")] * 4, stayed + [glimpse])
    counter.add_frame([said("happy")] * 3, stayed)
    counter.end_tracks(stayed[:2] + [glimpse])
    record = counter.close(seq=0, now=10)
    assert (record.people, record.ended, record.dwell_s) == (3, 2, 2.5)  # median of 4 s and 1 s
    counter.end_tracks([stayed[2]])  # counted in the previous window, ends in this one
    record = counter.close(seq=1, now=20)
    assert (record.people, record.ended, record.dwell_s) == (0, 1, 9.0)
    assert parsed(record).dwell_s == 9.0


def test_min_faces_still_applies_as_an_extra_floor():
    counter = WindowCounter("v", "c", 10, 1, MODEL, now=0, min_track_frames=1, min_faces=5)
    counter.add_frame([said("happy")] * 3, [track(0), track(1), track(2)])
    assert counter.close(seq=0, now=10).withheld
    counter.add_frame([said("happy")] * 3, [track(0), track(1), track(2)])
    counter.add_frame([said("happy")] * 3, [track(0), track(1), track(2)])
    assert not counter.close(seq=1, now=20).withheld


def test_untracked_faces_count_as_faces_never_as_people():
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=0)
    counter.add_frame([Prediction("happy", 0.8), Prediction("sad", 0.6)])
    record = counter.close(seq=0, now=10)
    assert (record.faces, record.people, record.counts["happy"], sum(record.votes.values())) == (2, 0, 1, 0)


def test_early_close_on_shutdown():
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=100)
    counter.add_frame([])
    record = counter.close(seq=1, now=104.5, early=True)
    assert record.end.timestamp() == 104.5 and record.in_view == 0.0 and record.people == 0


# Frames as lists of (track number, label): any tracker output, however it splits or swaps people.
FACE = st.tuples(st.integers(0, 30), st.sampled_from(emotions.LABELS))
FRAMES = st.lists(st.lists(FACE, max_size=6, unique_by=lambda face: face[0]), max_size=40)


@settings(derandomize=True, deadline=None, database=None, max_examples=300)
@given(frames=FRAMES, min_people=st.integers(1, 5), min_track_frames=st.integers(1, 4))
def test_any_tracker_output_gives_a_consistent_window_that_withholds_below_min_people_in_a_frame(
        frames, min_people, min_track_frames):
    """Whatever the tracker did, the window parses as v2, votes add up to people, and if no frame held
    ``min_people`` faces, nothing about emotions is published: the privacy rule cannot be beaten by tracks."""
    tracks = {number: track(number) for number in range(31)}
    counter = WindowCounter("v", "c", 10, min_people, MODEL, now=0, min_track_frames=min_track_frames)
    for faces in frames:
        counter.add_frame([said(label) for _, label in faces], [tracks[number] for number, _ in faces])
    record = counter.close(seq=0, now=10)
    back = parsed(record)
    assert back.people == record.people <= record.faces and back.entered == record.entered == record.people
    if max((len(faces) for faces in frames), default=0) < min_people:
        assert back.withheld and back.counts is None and back.votes is None and back.mean_confidence is None
    if not back.withheld:
        assert sum(back.votes.values()) == back.people


def test_no_window_is_a_sliver_the_aggregator_would_refuse_as_short():
    """The aggregator refuses windows under half a second (stacked-window attacks). An agent started 0.3 s before a
    boundary joins that sliver to the next window, and one stopped 0.2 s into a window stretches it to 1 s."""
    counter = WindowCounter("v", "c", 10, 0, MODEL, now=1009.7)
    assert (counter.start, counter.end) == (1009.7, 1020.0)
    first = counter.close(seq=0, now=1020.0)
    assert (first.end - first.start).total_seconds() > 10
    stopped = counter.close(seq=1, now=1020.2, early=True)
    assert (stopped.end - stopped.start).total_seconds() == 1.0
    long_enough = WindowCounter("v", "c", 10, 0, MODEL, now=1003.2)
    assert long_enough.end == 1010.0  # 6.8 s before the boundary: a window of its own


def test_a_face_too_small_to_read_counts_as_detections_but_never_as_a_person():
    """``min_person_px``: a person counts once their face was tall enough to read in some detection (the bench's
    truth uses 32 px); smaller faces are still face detections."""
    counter = WindowCounter("v", "c", 10, 1, MODEL, now=0, min_track_frames=1, min_person_px=32)
    small, large = track(1), Track(2, np.array([100.0, 0, 40, 40]), 0.0, 0.0)
    assert (small.tallest, large.tallest) == (20.0, 40.0)
    for _ in range(3):
        counter.add_frame([said("happy"), said("sad")], [small, large])
    record = parsed(counter.close(seq=0, now=10))
    assert record.faces == 6 and record.people == 1 and record.votes["sad"] == 1 and record.votes["happy"] == 0
