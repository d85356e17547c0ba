"""``emo7ion bench people``: virtual-camera clips and their truth, IDF1 on hand-made tracks, the synthetic vote
arithmetic, and the real agent's head count on a short rendered clip (crowd sample needed for the last ones)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from emo7ion.bench import clips, idf1, votes
from emo7ion.core import emotions

CROWD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crowd-sample"
FRONTAL = "0_Parade_marchingband_1_149.jpg"  # 24 valid faces, 32-43 px high (3 of 32, ..., 2 of 43)
needs_sample = pytest.mark.skipif(not (CROWD / "images" / FRONTAL).is_file(),
                                  reason=f"crowd sample not found at {CROWD} (shared data is not checked out)")


def still(zoom: float, cx: float = 512, cy: float = 342) -> clips.Scenario:
    return clips.Scenario("still", FRONTAL, (clips.Key(0.0, cx, cy, zoom), clips.Key(1.0, cx, cy, zoom)), "test")


# --- truth ----------------------------------------------------------------------------------------------------------

def test_truth_counts_a_person_after_one_second_in_one_stretch():
    fps = 10.0
    seen = [set() for _ in range(30)]
    for f in range(5, 15):  # person 1: frames 5..14, exactly 1 s
        seen[f].add(1)
    for f in itertools.chain(range(0, 9), range(10, 15)):  # person 2: 0.9 s, a gap, 0.5 s: 1.4 s but never 1 s at once
        seen[f].add(2)
    for f in range(20, 29):  # person 3: 0.9 s
        seen[f].add(3)
    for f in itertools.chain(range(0, 10), range(18, 30)):  # person 4: 1 s, leaves, comes back for 1.2 s to the end
        seen[f].add(4)
    assert clips.truth_people(seen, fps) == {1, 4}
    assert clips.truth_people(seen, fps, min_seconds=0.9) == {1, 2, 3, 4}
    assert clips.truth_visits(seen, fps) == 3, "person 1 once, person 4 twice"
    assert clips.truth_visits(seen, fps, min_seconds=0.9) == 1 + 1 + 1 + 2


def test_in_view_means_whole_valid_and_high_enough():
    faces = [clips.Face(i, (0, 0, 0, 0), valid=i != 4) for i in range(6)]
    boxes = np.array([[10, 10, 30, 40],     # 0: inside, 40 px
                      [-1, 10, 30, 40],     # 1: one pixel outside on the left
                      [1250, 680, 30, 40],  # 2: touching the bottom-right corner from inside
                      [100, 100, 25, 31.9],  # 3: under 32 px
                      [200, 200, 30, 40],   # 4: invalid (WIDER FACE)
                      [1251, 100, 30, 40]], float)  # 5: past the right edge
    assert clips.in_view(boxes, faces, 1280, 720, 32) == {0, 2}


@needs_sample
def test_a_still_view_of_the_whole_photo_sees_all_24_and_boxes_map_by_hand():
    clip, frames = clips.render(CROWD, still(1.0), seconds=1.2, fps=10, keep_frames=True)
    assert clip.frames == 12 and frames[0].shape == (720, 1280, 3)
    assert clip.people == set(range(24)), "1024x684 fits inside 1280x720 at zoom 1; every face is >= 32 px"
    assert clip.face_frames == 24 * 12
    # face 0 is [213, 233, 21, 32] in the photo; at zoom 1 the photo's centre (512, 342) is the frame's (640, 360)
    assert clip.boxes[0][0] == pytest.approx((341, 251, 21, 32))
    photo = __import__("cv2").imread(str(CROWD / "images" / FRONTAL))
    assert np.abs(frames[0][251:283, 341:362].astype(int) - photo[233:265, 213:234].astype(int)).max() <= 1


@needs_sample
def test_zooming_out_drops_faces_under_32_px_and_a_short_clip_counts_nobody():
    clip, _ = clips.render(CROWD, still(0.9), seconds=1.0, fps=10)
    assert len(clip.people) == 9, "at 0.9x only faces >= 36 px in the photo reach 32 px: 2+1+2+1+1+2 of them"
    brief, _ = clips.render(CROWD, still(1.0), seconds=0.9, fps=10)
    assert brief.people == set() and brief.face_frames == 0, "9 frames at 10 fps are under 1 s"


@needs_sample
def test_a_pan_writes_an_mp4_the_video_source_reads_frame_by_frame(tmp_path):
    from emo7ion.edge.sources.video import VideoFileSource

    scenario = clips.Scenario("pan", FRONTAL, (clips.Key(0, 300, 320, 2.0), clips.Key(1, 700, 320, 2.0)), "test")
    clip, _ = clips.render(CROWD, scenario, seconds=1.5, fps=10, out=tmp_path / "pan.mp4")
    source = VideoFileSource(str(tmp_path / "pan.mp4"))
    source.open()
    read = 0
    while source.read() is not None:
        read += 1
    source.close()
    assert read == clip.frames == 15 and source.fps == pytest.approx(10)
    clip.write_truth(tmp_path / "pan-truth.json")
    kept = __import__("json").loads((tmp_path / "pan-truth.json").read_text())
    assert kept["people_ids"] == sorted(clip.people) and len(kept["frames_truth"]) == 15
    assert {f["id"] for f in kept["frames_truth"][0]["faces"] if f["scored"]} == clip.seen[0] & clip.people
    # the view is 640 photo px wide and moves 400 px: faces on the left leave, those on the right come in
    first, last = clip.seen[0], clip.seen[-1]
    assert first and last and first != last
    assert all(clip.boxes[f][i][3] == pytest.approx(64, abs=22) for f in (0, 14) for i in clip.seen[f])


# --- IDF1 -----------------------------------------------------------------------------------------------------------

def box(x: float) -> tuple[float, float, float, float]:
    return (x, 100.0, 40.0, 40.0)


def test_idf1_of_a_track_that_switches_halfway_and_one_on_an_ignored_face():
    # person 7 walks right for 10 frames; the tracker follows with track 1 for 6 frames, then track 2 for 4
    truth = [{7: box(10 * f)} for f in range(10)]
    tracks = [{(1 if f < 6 else 2): box(10 * f + 3)} for f in range(10)]
    ignored = [[] for _ in range(10)]
    for f in range(10):  # a face too small for the truth, tracked in every frame by track 9: neither hit nor miss
        ignored[f].append((600.0, 100.0, 20.0, 20.0))
        tracks[f][9] = (601.0, 100.0, 20.0, 20.0)
    score = idf1.score(truth, tracks, ignored)
    assert score.idtp == 6 and score.truth_boxes == 10 and score.track_boxes == 10 and score.ignored_boxes == 10
    assert score.idf1 == pytest.approx(2 * 6 / 20) and score.idp == pytest.approx(0.6)
    assert score.switches == 1 and score.tracks_per_person == 2.0
    unignored = idf1.score(truth, tracks)
    assert unignored.track_boxes == 20 and unignored.idf1 == pytest.approx(12 / 30), "track 9 is a false alarm then"


def test_idf1_is_one_for_perfect_tracks_and_counts_swapped_identities():
    truth = [{1: box(0), 2: box(200)} for _ in range(8)]
    assert idf1.score(truth, [{5: box(1), 6: box(201)} for _ in range(8)]).idf1 == 1.0
    swapped = [{5: box(1), 6: box(201)} if f < 4 else {6: box(1), 5: box(201)} for f in range(8)]
    score = idf1.score(truth, swapped)
    assert score.idtp == 8 and score.idf1 == pytest.approx(0.5) and score.switches == 2
    missed = idf1.score(truth, [{} for _ in range(8)])
    assert missed.idf1 == 0.0 and missed.truth_boxes == 16


def test_assignment_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(200):
        rows, cols = rng.integers(1, 6, 2)
        cost = rng.integers(0, 9, (rows, cols)).astype(float)
        pairs = idf1.assign(cost)
        assert len(pairs) == min(rows, cols)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
        small, large = sorted((int(rows), int(cols)))
        picks = itertools.permutations(range(large), small)
        best = min(sum(cost[(i, j) if rows <= cols else (j, i)] for i, j in enumerate(pick)) for pick in picks)
        assert sum(cost[r, c] for r, c in pairs) == pytest.approx(best)


# --- synthetic votes ------------------------------------------------------------------------------------------------

def test_vote_and_frame_accuracy_on_hand_made_probabilities():
    # each face's pixel value says what the "classifier" answers: 0 -> right label at 0.4, 1 -> a wrong one at 0.9,
    # 2 -> right at 0.9; two people of k = 3
    def predict(batch):
        out = np.full((len(batch), emotions.NUM_CLASSES), 0.01)
        for i, (code, label) in enumerate(zip(np.round(batch[:, 0, 0, 0] * 255), plan_labels)):
            out[i, int(label) if code != 1 else (int(label) + 1) % 7] = 0.4 if code == 0 else 0.9
        return out

    codes = np.array([[0, 0, 1], [1, 2, 2]], np.uint8)  # person A: 2 of 3 right, vote wrong; B: 2 of 3, vote right
    labels = np.array([3, 5])
    plan_labels = np.repeat(labels, 3)
    frames = np.broadcast_to(codes[:, :, None, None], (2, 3, 48, 48)).copy()
    result = votes.accuracy(predict, frames, labels)
    assert result["frame_accuracy"] == pytest.approx(4 / 6, abs=1e-4) and result["vote_accuracy"] == 0.5
    assert result["people"] == 2 and result["frames"] == 6


def test_synthetic_people_use_each_val_face_once_or_jitter_one():
    x = np.random.default_rng(0).integers(0, 256, (23, 48, 48), dtype=np.uint8)
    y = np.array([0] * 7 + [1] * 10 + [3] * 6)
    frames, labels = votes.people(x, y, "distinct", 3)
    assert frames.shape == (2 + 3 + 2, 3, 48, 48) and list(np.bincount(labels)) == [2, 3, 0, 2]
    flat = {frame.tobytes() for person in frames for frame in person}
    assert len(flat) == 21, "distinct faces, none twice"
    jittered, same = votes.people(x, y, "jitter", 4)
    assert jittered.shape == (23, 4, 48, 48) and (same == y).all()
    assert (jittered[:, 0] == x).all() and not (jittered[:, 1] == x).all()


# --- the real agent -------------------------------------------------------------------------------------------------

@needs_sample
def test_the_agent_counts_the_people_of_a_short_clip_within_the_must_show_band(tmp_path):
    """Must-show 2 on a short clip: the published window's people within 0.7x-1.2x of the truth, face-frames at
    least 5x people. 24 band members in view for 1.5 s at 48-65 px, a slow pan (6 px a frame)."""
    from emo7ion.bench import people
    from emo7ion.core.service.resources import shipped_model

    scenario = clips.Scenario("test-pan", FRONTAL, (clips.Key(0, 480, 320, 1.5), clips.Key(1, 540, 320, 1.5)), "t")
    clip, _ = clips.render(CROWD, scenario, seconds=1.5, fps=10, out=tmp_path / "pan.mp4")
    assert len(clip.people) == 24
    row = people.analyse(clip, people.Setting("centerface", 1), str(shipped_model()), 5.0, tmp_path)
    assert row["windows"] == 1 and row["frames"] == 15
    assert 0.7 * 24 <= row["people"] <= 1.2 * 24, row
    assert row["face_frames"] >= 5 * row["people"]
    assert row["idf1"]["idf1"] > 0.8, row["idf1"]
    assert (tmp_path / "test-pan-centerface-every1.jsonl").is_file()


def test_cli_lists_the_clips_and_names_a_bad_one(capsys, tmp_path):
    from emo7ion.cli import main

    assert main(["bench", "people", "--crowd", str(tmp_path), "--list-clips"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(clips.SCENARIOS)
    assert main(["bench", "people", "--crowd", str(tmp_path), "--clips", "band-pan,parade"]) == 2
    err = capsys.readouterr().err
    assert "unknown clip(s) parade" in err and "band-pan" in err and "Traceback" not in err
    assert main(["bench", "people", "--crowd", str(tmp_path), "--clips", "band-pan"]) == 2
    assert "no ground_truth.json" in capsys.readouterr().err
    assert main(["bench", "people", "--crowd", str(tmp_path), "--detectors", "centerface,yunet"]) == 2
    assert "unknown type(s) yunet" in capsys.readouterr().err
