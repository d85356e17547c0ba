"""edge/track: boxes become anonymous tracks by overlap and nearness; gaps end them; a split person stays one."""

from pathlib import Path

import numpy as np

from emo7ion.core import emotions
from emo7ion.core.runtime import Prediction
from emo7ion.edge.track import Tracker, greedy_assignment
from emo7ion.edge.window import WindowCounter

MODEL = {"sha256": "ab" * 32, "version": "test"}


def numbers(tracks) -> list[int]:
    return [t.number for t in tracks]


def test_greedy_assignment_takes_the_best_overlap_first_and_each_side_once():
    iou = np.array([[0.9, 0.6, 0.0],
                    [0.8, 0.1, 0.0],
                    [0.0, 0.0, 0.2]])
    assert sorted(greedy_assignment(iou, 0.3)) == [(0, 0)]  # row 1 lost its only match; 0.2 is below the bar
    assert sorted(greedy_assignment(iou, 0.05)) == [(0, 0), (1, 1), (2, 2)]
    assert greedy_assignment(np.zeros((0, 3)), 0.3) == []


def test_faces_that_move_keep_their_tracks_and_new_faces_get_new_ones():
    tracker = Tracker(iou=0.3, max_gap_s=1.0)
    first, ended = tracker.update([(100, 100, 40, 40), (300, 100, 40, 40)], ts=0.0)
    assert ended == [] and len(set(numbers(first))) == 2
    # both walk right 10 px a frame; listed in the other order; a third face arrives far away
    second, _ = tracker.update([(310, 100, 40, 40), (110, 100, 40, 40), (600, 400, 40, 40)], ts=0.2)
    assert numbers(second)[:2] == numbers(first)[::-1] and numbers(second)[2] not in numbers(first)
    third, _ = tracker.update([(120, 101, 40, 40), (320, 99, 40, 40), (600, 400, 40, 40)], ts=0.4)
    assert numbers(third) == [numbers(first)[0], numbers(first)[1], numbers(second)[2]]
    left = third[0]
    assert (left.hits, left.first_ts, left.last_ts) == (3, 0.0, 0.4)
    assert abs(left.velocity[0] - 50.0) < 1e-6  # 10 px per 0.2 s, learnt from the detections
    assert np.allclose(left.predict(0.6)[:2], (130, 101), atol=1.0)


def test_a_fast_small_face_continues_by_nearness_not_overlap():
    """A 20 px face moving 12 px a frame overlaps its last box by IoU 0.25: nearness keeps it one track."""
    boxes = [[(100 + 12 * i, 100, 20, 20)] for i in range(6)]
    near, overlap_only = Tracker(iou=0.3, max_jump=1.0), Tracker(iou=0.3, max_jump=0.0)
    assert len({t.number for i, b in enumerate(boxes) for t in near.update(b, i / 5)[0]}) == 1
    assert len({t.number for i, b in enumerate(boxes) for t in overlap_only.update(b, i / 5)[0]}) > 1


def test_a_face_that_enters_during_a_pan_moves_with_the_others_from_its_first_frame():
    """The camera pans 40 px a frame. The near faces (80 px) still overlap from frame to frame and their tracks
    learn the pan; a far face (20 px) entering now moves two of its sizes a frame, out of reach of overlap and
    nearness, unless it starts at the others' median velocity, as it does: it stays one track."""
    def frame(index):
        return [(100 + 120 * i + 40 * index, 300, 80, 80) for i in range(4)]

    for common_motion in (True, False):
        tracker = Tracker(iou=0.3, max_jump=1.0)
        if not common_motion:
            tracker._common_velocity = lambda tracks: np.zeros(4)
        for index in range(4):
            tracks, _ = tracker.update(frame(index), index * 0.1)
        assert len({t.number for t in tracks}) == 4 and np.allclose([t.velocity[0] for t in tracks], 400.0)
        entering = set()
        for index in range(4, 8):
            tracks, _ = tracker.update(frame(index) + [(40 * index, 100, 20, 20)], index * 0.1)
            entering.add(tracks[-1].number)
        assert len(entering) == (1 if common_motion else 4)


def test_a_track_ends_after_the_gap_and_a_returning_face_is_someone_new():
    tracker = Tracker(iou=0.3, max_gap_s=1.0)
    (face,), _ = tracker.update([(100, 100, 40, 40)], ts=0.0)
    assert tracker.update([], ts=0.5) == ([], [])  # missed for 0.5 s: still alive
    (again,), ended = tracker.update([(101, 100, 40, 40)], ts=0.9)
    assert again is face and ended == []
    _, ended = tracker.update([], ts=1.8)  # 0.9 s since: alive
    assert ended == []
    _, ended = tracker.update([], ts=2.0)  # 1.1 s since its last detection: gone
    assert ended == [face] and tracker.live == [] and face.seconds_in_view == 0.9
    (back,), _ = tracker.update([(100, 100, 40, 40)], ts=2.1)
    assert back is not face  # no appearance memory: the same place later is a new track


def test_a_face_is_matched_after_a_gap_longer_than_max_gap_when_no_detector_frame_came_between():
    """detect_every N at a low frame rate: detector frames can be further apart than max_gap_s."""
    tracker = Tracker(max_gap_s=1.0)
    (face,), _ = tracker.update([(100, 100, 40, 40)], ts=0.0)
    (again,), ended = tracker.update([(102, 100, 40, 40)], ts=1.5)
    assert again is face and ended == []


def test_time_going_back_ends_every_track():
    tracker = Tracker()
    (face,), _ = tracker.update([(100, 100, 40, 40)], ts=10.0)
    (new,), ended = tracker.update([(100, 100, 40, 40)], ts=0.0)  # a recording that starts again
    assert ended == [face] and new is not face


def test_only_faces_found_twice_and_in_the_last_detector_frame_are_carried():
    tracker = Tracker()
    tracker.update([(100, 100, 40, 40), (300, 100, 40, 40)], ts=0.0)
    tracks, _ = tracker.update([(110, 100, 40, 40), (600, 100, 40, 40)], ts=0.2)  # the face at 300 is missed
    carried = tracker.carried(0.3)
    assert [t for t, _ in carried] == [tracks[0]]  # not the missed one, not the one seen once
    assert np.allclose(carried[0][1], (115, 100, 40, 40))
    assert tracker.carried(0.3, width=100, height=720) == []  # its centre has left a 100 px wide frame


def people_after(heights_at: dict[float, float | None], min_seen_s: float = 1.0) -> int:
    """One face standing still at (100, 100), its box ``heights_at[ts]`` px tall (None: the detector missed it at
    ts), through the real tracker and a window with the agent's rule (32 px, ``min_seen_s``)."""
    tracker = Tracker(iou=0.3, max_gap_s=1.0, min_px=32)
    window = WindowCounter("v", "c", 60, 0, MODEL, now=0, min_track_frames=3, min_person_px=32,
                           min_seen_s=min_seen_s)
    for ts, height in sorted(heights_at.items()):
        tracks, ended = tracker.update([] if height is None else [(100, 100, 0.8 * height, height)], ts)
        window.add_frame([said("happy")] * len(tracks), tracks, ended)
    return window.close(seq=0, now=60).people


def test_a_person_is_a_face_seen_big_enough_to_read_for_a_second_in_one_stretch():
    """The bench's truth counts a face in view at >= 32 px for >= 1 s; the agent counts by the same rule on what it
    sees. Its box height jitters by a pixel or two, so the tracker smooths it: a tallest box is not enough."""
    every = [round(0.1 * i, 1) for i in range(21)]  # 2 s at 10 fps
    assert people_after({ts: 36.0 for ts in every}) == 1
    assert people_after({ts: 36.0 for ts in every}, min_seen_s=0.0) == 1
    assert people_after({ts: 36.0 for ts in every[:10]}) == 0  # 0.9 s: a glimpse
    assert people_after({ts: 36.0 for ts in every[:11]}) == 1  # 1.0 s
    # a 29-31 px face whose box sometimes reads 33: its tallest box says 33, its smoothed height never reaches 32
    assert people_after({ts: (33.0 if i % 4 == 0 else 29.0 + i % 3) for i, ts in enumerate(every)}) == 0
    assert people_after({ts: (33.0 if i % 4 == 0 else 29.0 + i % 3) for i, ts in enumerate(every)},
                        min_seen_s=0.0) == 1  # without the rule it was a person
    # one short box among readable ones does not break the stretch; a face that shrinks for a while does
    assert people_after({ts: (31.0 if i == 5 else 36.0) for i, ts in enumerate(every[:12])}) == 1
    assert people_after({ts: (24.0 if 6 <= i <= 9 else 36.0) for i, ts in enumerate(every[:16])}) == 0
    # detector frames that miss the face do not break it (the track's own max_gap_s decides whether it left)
    assert people_after({ts: (None if i in (3, 4, 7) else 36.0) for i, ts in enumerate(every[:11])}) == 1


def said(label: str) -> Prediction:
    probabilities = np.full(emotions.NUM_CLASSES, 0.02)
    probabilities[emotions.LABELS.index(label)] = 0.88
    return Prediction(label, 0.88, probabilities)


def test_one_person_the_tracker_splits_into_many_tracks_never_counts_as_three():
    """An unlucky venue or an attacker: one face that jumps across the view every few frames (a flickering
    detector, a mirror, someone playing with the rule). The real tracker splits it into many tracks, each long
    enough to count as a person, and the window still withholds: one face per frame is at most one person."""
    tracker = Tracker(iou=0.3, max_gap_s=1.0)
    window = WindowCounter("v", "c", 60, 3, MODEL, now=0, min_track_frames=3)
    spots = [(50, 50), (600, 50), (50, 400), (600, 400), (300, 250), (900, 500)]
    ts = 0.0
    for _ in range(4):
        for x, y in spots:
            for _frame in range(4):
                tracks, ended = tracker.update([(x, y, 60, 60)], ts)
                window.add_frame([said("happy")], tracks, ended)
                ts += 0.2
    record = window.close(seq=0, now=60)
    assert record.people >= 6  # the tracker was fooled: every jump made a new track
    assert record.withheld and record.counts is None and record.votes is None and record.mean_confidence is None
    # and three real people, standing still, do share
    window = WindowCounter("v", "c", 60, 3, MODEL, now=60, min_track_frames=3)
    tracker = Tracker()
    for index in range(4):
        tracks, ended = tracker.update([(50, 50, 60, 60), (600, 50, 60, 60), (50, 400, 60, 60)], 60 + index * 0.2)
        window.add_frame([said("happy")] * 3, tracks, ended)
    record = window.close(seq=1, now=120)
    assert record.people == 3 and not record.withheld and record.votes["happy"] == 3


def faces_frame(spots, side: int = 80) -> np.ndarray:
    """Real FER2013 faces (the demo's package data) at ``spots`` on a plain 640x360 frame."""
    import cv2

    from emo7ion.demo.crowd import load_faces

    faces, _ = load_faces()
    frame = np.full((360, 640, 3), 90, np.uint8)
    for index, (x, y) in enumerate(spots):
        frame[y:y + side, x:x + side] = cv2.resize(faces[40 * index], (side, side),
                                                   interpolation=cv2.INTER_CUBIC)[:, :, None]
    return frame


def make_agent(tmp_path, **settings):
    from emo7ion.edge import config as edge_config
    from emo7ion.edge.agent import Agent

    model = Path(__file__).resolve().parents[1] / "models" / "emo7ion-edge-int8.tflite"
    # The float detector: it finds every one of these 80 px FER2013 faces (int8 CenterFace misses some of them at
    # this size on a plain background), and these tests are about tracks and windows, not the detector.
    config = edge_config.load(None, {"venue": "v", "camera": "c", "model": str(model), "window_s": 60.0,
                                     "detector": {"type": "centerface", "threshold": 0.3},
                                     "source": {"path": str(tmp_path)},
                                     "outbox": {"path": str(tmp_path / "outbox.sqlite")}, **settings}, environ={})
    return Agent(config)  # not run: frames go straight to process(), nothing connects


def test_the_real_agent_withholds_one_face_that_jumps_around(tmp_path):
    """The split-person attack through the real detector, tracker and classifier: one face shown at six places in
    turn, five frames 0.25 s apart at each (1 s at a readable size: enough to count). Six people by tracks;
    withheld, because no frame held three."""
    agent = make_agent(tmp_path)
    spots = [(20, 20), (280, 20), (540, 20), (20, 260), (280, 260), (540, 260)]
    ts = 1000.0
    for spot in spots:
        frame = faces_frame([spot])
        for _frame in range(5):
            assert agent.process(frame, ts) == 1
            ts += 0.25
    record = agent.window.close(seq=0, now=ts)
    agent.outbox.close()
    assert record.people == 6 and record.faces == 30
    assert record.withheld and record.counts is None and record.votes is None and record.mean_confidence is None


def test_detect_every_3_runs_the_detector_on_a_third_of_the_frames_and_sees_the_same_people(tmp_path):
    frame = faces_frame([(40, 40), (280, 200), (520, 60)])
    records, calls, read = {}, {}, {}
    for every in (1, 3):
        agent = make_agent(tmp_path / str(every), detect_every=every)
        real_detect, calls[every] = agent.detector.detect, []

        def counted(image, real_detect=real_detect, log=calls[every]):
            log.append(1)
            return real_detect(image)

        agent.detector.detect = counted
        real_classify, read[every] = agent.classifier.classify, []

        def classified(crops, real_classify=real_classify, log=read[every]):
            log.append(len(crops))
            return real_classify(crops)

        agent.classifier.classify = classified
        for index in range(12):
            agent.process(frame, 1000.0 + index * 0.25)
        records[every] = agent.window.close(seq=0, now=1010.0)
        agent.outbox.close()
    assert (len(calls[1]), len(calls[3])) == (12, 4)
    # the classifier rests where the detector does: carried boxes reuse their face's last reading
    assert (len(read[1]), len(read[3]), sum(read[3])) == (12, 4, 12)
    assert records[1].people == records[3].people == 3 and not records[3].withheld
    # carried faces count as face detections: only the frames before a face was found twice lack it (1 and 2)
    assert (records[1].faces, records[3].faces) == (36, 30)
    assert records[3].votes == records[1].votes
