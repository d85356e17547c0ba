"""Face detectors on real crowd photos, their registry and CLI, and the scoring arithmetic on hand-made boxes."""

import json
from pathlib import Path

import numpy as np
import pytest

from emo7ion.bench.detector_scoring import match, read_image, score_detector, score_image, size_bin, summarise
from emo7ion.cli import main
from emo7ion.edge.detect import Detection, DetectorError, registry
from emo7ion.edge.detect.blazeface import ANCHOR_STRIDES, anchors
from emo7ion.edge.detect.boxes import iou_matrix, nms, tiles

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crowd-sample"
PARADE = "0_Parade_marchingband_1_149.jpg"  # 24 frontal faces, all >= 32 px high
RECALL_FLOOR = {"centerface": 0.9, "centerface-int8": 0.9}  # the default must find nearly all; the others at least most
DEFAULT_FLOOR = 0.7

needs_sample = pytest.mark.skipif(not (SAMPLE / "images" / PARADE).is_file(),
                                  reason=f"crowd sample not found at {SAMPLE} (shared data is not checked out)")


@pytest.fixture(scope="module")
def detectors() -> dict:
    """Each detector type with its own defaults, built once (a missing weight wheel is skipped per test)."""
    built = {}
    for key in registry.available():
        try:
            built[key] = registry.create({"type": key})
        except DetectorError as error:
            built[key] = error
    return built


def get(detectors: dict, key: str):
    found = detectors[key]
    if isinstance(found, DetectorError):
        pytest.skip(f"{key} cannot run here: {found}")
    return found


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLE / "ground_truth.json").read_text())


def test_plugins_are_discovered():
    assert {"haar", "centerface", "blazeface"} <= set(registry.available())
    assert registry.DEFAULT["type"] in registry.available()
    for key in registry.available():
        assert all(text for _, _, text in registry.options_help(key)), key


@needs_sample
@pytest.mark.parametrize("key", registry.available())
def test_detector_finds_frontal_parade_faces(key, detectors, truth):
    detector = get(detectors, key)
    found = detector.detect(read_image(SAMPLE / "images" / PARADE))
    counts = score_image(found, truth[PARADE])
    assert counts["faces_32"] == 24
    recall = counts["found_32"] / counts["faces_32"]
    assert recall >= RECALL_FLOOR.get(key, DEFAULT_FLOOR), (key, counts)
    assert counts["false_positives"] <= 5, (key, counts)
    assert all(isinstance(d, Detection) and 0.0 <= d.score <= 1.0 and d.w > 0 and d.h > 0 for d in found)
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


@needs_sample
def test_default_detector_on_the_whole_sample():
    result = score_detector(registry.create(registry.DEFAULT), SAMPLE / "images", SAMPLE / "ground_truth.json",
                            hd_timing=False)
    assert result["faces_32"] == 26 and result["faces_16_32"] == 78
    assert result["recall_32"] >= 0.9 and result["recall_16_32"] >= 0.85, result
    assert result["ms_per_frame"] > 0 and result["ms_1280x720"] is None
    assert set(result["images"]) == set(json.loads((SAMPLE / "ground_truth.json").read_text()))


@pytest.mark.parametrize("key", registry.available())
def test_blank_frames_give_no_faces(key, detectors):
    detector = get(detectors, key)
    for frame in (np.zeros((480, 640, 3), np.uint8), np.full((37, 101, 3), 128, np.uint8)):
        assert detector.detect(frame) == []
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect(np.zeros((48, 48), np.float32))


def test_registry_names_the_bad_key():
    with pytest.raises(ValueError, match=r"unknown detector type 'yolo'.*centerface.*haar"):
        registry.create({"type": "yolo"})
    with pytest.raises(ValueError, match="need a 'type'"):
        registry.create({"threshold": 0.5})
    with pytest.raises(ValueError, match=r"unknown option\(s\) treshold for detector 'centerface'.*threshold"):
        registry.create({"type": "centerface", "treshold": 0.5})
    with pytest.raises(ValueError, match="threshold=1.5: must be within 0..1"):
        registry.create({"type": "centerface", "threshold": 1.5})
    with pytest.raises(ValueError, match="tiles='many' must be an integer"):
        registry.create({"type": "blazeface", "tiles": "many"})
    with pytest.raises(ValueError, match="model='huge'"):
        registry.create({"type": "blazeface", "model": "huge"})
    with pytest.raises(ValueError, match="min_neighbors=True must be an integer"):
        registry.create({"type": "haar", "min_neighbors": True})


@pytest.mark.parametrize("kind", ["centerface", "blazeface"])
@pytest.mark.parametrize("key, value, message", [
    ("nms_iou", -0.1, "nms_iou=-0.1: must be within 0..1"),
    ("tiles", 9, "tiles=9: must be within 1..8"),
    ("tile_overlap", 0.95, "tile_overlap=0.95: must be within 0..0.9"),
    ("threads", 0, "threads=0: must be at least 1"),
])
def test_tiled_detectors_check_their_shared_options(kind, key, value, message):
    with pytest.raises(ValueError, match=message):
        registry.create({"type": kind, key: value})


def test_registry_parses_strings_and_reports_missing_weights(tmp_path):
    detector = registry.create({"type": "haar", "scale_factor": "1.2", "min_neighbors": "4", "min_size": 30})
    assert (detector.options.scale_factor, detector.options.min_neighbors) == (1.2, 4)
    with pytest.raises(DetectorError, match="missing.onnx not found .*model_path"):
        registry.create({"type": "centerface", "model_path": str(tmp_path / "missing.onnx")})
    with pytest.raises(DetectorError, match="missing.tflite not found .*model_path"):
        registry.create({"type": "blazeface", "model_path": str(tmp_path / "missing.tflite")})


def test_detector_weights_ship_in_the_package_with_their_licences():
    """The default detector needs no second install: its weights are package data, found by importlib.resources."""
    from emo7ion.edge.detect import weights

    for name in (weights.CENTERFACE, *weights.BLAZEFACE.values()):
        assert weights.path(name).stat().st_size > 100_000, name
    notice = weights.path("LICENSES.md").read_text()
    assert "MIT" in notice and "Apache License" in notice and weights.CENTERFACE in notice


def test_blazeface_anchor_layout_matches_the_models():
    assert len(anchors(192, ANCHOR_STRIDES["full"])) == 2304
    short = anchors(128, ANCHOR_STRIDES["short"])
    assert len(short) == 896
    np.testing.assert_allclose(short[0], [1 / 32, 1 / 32])  # first cell of the 16x16 grid, twice
    np.testing.assert_allclose(short[512], [1 / 16, 1 / 16])  # first cell of the 8x8 grid, six times
    np.testing.assert_allclose(short[517], [1 / 16, 1 / 16])


@needs_sample
def test_cli_detect_json(capsys):
    image = str(SAMPLE / "images" / PARADE)
    assert main(["edge", "detect", image, "--detector", "haar", "--option", "min_neighbors=4", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{image}: ") and " ms (haar)" in lines[0]
    found = json.loads(lines[-1])
    assert list(found) == [image]
    assert len(found[image]) >= 17
    assert all(len(box) == 5 and all(isinstance(v, (int, float)) for v in box) for box in found[image])


def test_cli_detect_errors_name_the_key(capsys, tmp_path):
    assert main(["edge", "detect", str(tmp_path / "x.jpg"), "--option", "nms=0.5"]) == 2
    err = capsys.readouterr().err
    assert "emo7ion edge: error: unknown option(s) nms" in err and "nms_iou" in err
    assert main(["edge", "detect", str(tmp_path / "x.jpg"), "--option", "threshold"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["edge", "detect", str(tmp_path / "x.jpg"), "--detector", "haar"]) == 2
    assert "x.jpg not found" in capsys.readouterr().err


@needs_sample
def test_cli_score_detector_json(capsys):
    assert main(["edge", "score-detector", "--images", str(SAMPLE / "images"), "--ground-truth",
                 str(SAMPLE / "ground_truth.json"), "--detector", "blazeface", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("total") for line in out)
    result = json.loads(out[-1])
    assert result["options"] == {"type": "blazeface"} and result["faces_32"] == 26
    assert 0.0 <= result["recall_32"] <= 1.0 and result["ms_1280x720"] > 0


# --- scoring and box arithmetic on hand-made boxes -----------------------------------------------------------


def test_iou_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [10, 10, 5, 5], [0, 0, 0, 0]])
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0, 0.0])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)


def test_one_detection_per_face_best_score_first():
    faces = np.array([[0, 0, 40, 40], [100, 0, 40, 40]])
    weak_exact = (0, 0, 40, 40, 0.6)
    strong_shifted = (4, 4, 40, 40, 0.9)  # IoU with face 0 is 0.68
    far = (300, 300, 40, 40, 0.95)
    assigned = match([weak_exact, strong_shifted, far], faces)
    assert assigned.tolist() == [-1, 0, -1]  # the stronger detection takes the face; one match per face
    counts = score_image([weak_exact, strong_shifted, far],
                         [{"box": [0, 0, 40, 40], "invalid": False}, {"box": [100, 0, 40, 40], "invalid": False}])
    assert counts == {"detections": 3, "false_positives": 2, "faces_32": 2, "found_32": 1, "faces_16_32": 0,
                      "found_16_32": 0, "faces_8_16": 0, "found_8_16": 0}
    assert match([(0, 0, 40, 40, 0.9)], faces, iou_threshold=0.5).tolist() == [0]
    assert match([(20, 0, 40, 40, 0.9)], faces).tolist() == [-1]  # IoU 1/3 < 0.5


def test_size_bins_and_invalid_faces():
    assert [size_bin(h) for h in (100, 32, 31.9, 16, 15.9, 8, 7.9)] == ["32", "32", "16_32", "16_32", "8_16",
                                                                          "8_16", None]
    faces = [{"box": [0, 0, 20, 40], "invalid": False},    # >= 32 px, found
             {"box": [100, 0, 10, 20], "invalid": False},  # 16-32 px, missed
             {"box": [200, 0, 10, 10], "invalid": False},  # 8-16 px, found
             {"box": [250, 0, 6, 6], "invalid": False},    # < 8 px: in no bin, but a real face
             {"box": [300, 0, 20, 40], "invalid": True}]   # left out of recall, not a false positive either
    detections = [Detection(0, 0, 20, 40, 0.9), Detection(200, 0, 10, 10, 0.5), Detection(250, 0, 6, 6, 0.4),
                  Detection(300, 0, 20, 40, 0.8), Detection(500, 500, 30, 30, 0.7)]
    counts = score_image(detections, faces)
    assert counts == {"detections": 5, "false_positives": 1, "faces_32": 1, "found_32": 1, "faces_16_32": 1,
                      "found_16_32": 0, "faces_8_16": 1, "found_8_16": 1}
    total = summarise({"a": counts, "b": score_image([], [])})
    assert total["recall_32"] == 1.0 and total["recall_16_32"] == 0.0 and total["false_positives"] == 1
    assert summarise({"b": score_image([], [])})["recall_32"] is None


def test_nms_and_tiles():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]])
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.3).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.3).tolist() == []
    windows = tiles(1280, 720, 3, 0.25)
    assert len(windows) == 9 and tiles(1280, 720, 1, 0.25) == [(0, 0, 1280, 720)]
    covered = np.zeros((720, 1280), bool)
    for x, y, w, h in windows:
        assert x >= 0 and y >= 0 and x + w <= 1280 and y + h <= 720
        covered[y:y + h, x:x + w] = True
    assert covered.all()
    assert windows[1][0] < windows[0][2]  # neighbours overlap
