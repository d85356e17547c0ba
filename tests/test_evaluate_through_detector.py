"""``emo7ion evaluate --through-detector``: real FER2013 faces through the shipped CenterFace, crop contract and
int8 classifier, with the native framing scored on exactly the faces the detector found."""

import json
from importlib import resources

import cv2
import numpy as np
import pytest

from emo7ion.cli import main
from emo7ion.core import emotions, provenance
from emo7ion.core import faces as crop_contract
from emo7ion.core.runtime import EmotionClassifier
from emo7ion.core.service.resources import shipped_model
from emo7ion.edge.detect import registry
from emo7ion.training.evaluate_through_detector import (
    Canvas,
    border_share,
    box_statistics,
    crops,
    evaluate_through_detector,
)

PER_CLASS = 5


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    """``<emotion>/*.png``: the first PER_CLASS real FER2013 val faces of each class (the demo's packaged set),
    plus one flat gray image per class that no detector finds: the detected subset is a strict one."""
    with resources.files("emo7ion.demo").joinpath("faces.npz").open("rb") as handle:
        packaged = np.load(handle)
        images, labels = packaged["faces"], packaged["labels"]
    root = tmp_path_factory.mktemp("through-detector")
    chosen = {}
    for index, label in enumerate(emotions.LABELS):
        folder = root / label
        folder.mkdir()
        picks = images[labels == index][:PER_CLASS]
        chosen[label] = picks
        for i, face in enumerate(picks):
            cv2.imwrite(str(folder / f"{i}.png"), face)
        cv2.imwrite(str(folder / "blank.png"), np.full((48, 48), 127, np.uint8))
    return root, chosen


def run_json(capsys, *argv) -> tuple[dict, str]:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), out


def test_through_detector_reports_detection_and_both_framings_on_the_same_faces(face_folder, capsys):
    root, chosen = face_folder
    model = str(shipped_model())
    report, text = run_json(capsys, "evaluate", model, str(root), "--through-detector", "--margins", "0.1,0.025",
                            "--json")

    n_faces = len(emotions.LABELS) * (PER_CLASS + 1)
    assert report["n"] == n_faces and report["native_all"]["n"] == n_faces
    assert report["flip_average"] is True  # as the agent runs by default
    assert report["detector"]["type"] == registry.DEFAULT["type"]
    assert report["canvas"] == {"scale": 4, "pad": 0.25, "fill": "gray"}
    assert 0 < report["detected"] <= n_faces - len(emotions.LABELS)  # no blank is a face
    assert report["detected_share"] == pytest.approx(report["detected"] / n_faces, abs=1e-4)
    assert set(report["margins"]) == {"0.1", "0.025"} and report["margin"] == 0.1
    assert report["through_detector"] == report["margins"]["0.1"]
    for line in (report["native"], *report["margins"].values()):
        assert line["n"] == report["detected"]
        assert 0.0 <= line["accuracy"] <= 1.0 and list(line["per_class"]) == list(emotions.LABELS)
    for label in emotions.LABELS:
        assert report["detected_share_per_class"][label] <= PER_CLASS / (PER_CLASS + 1) + 1e-4
    assert report["boxes"]["n"] == report["detected"] and 0.5 < report["boxes"]["height"]["median"] < 1.2
    assert "native framing" in text and "margin 0.1" in text
    assert report["contract_margin"] == EmotionClassifier(model).crop_margin  # the shipped 1.2.1 stores 0.025
    assert 0.0 <= report["margins"]["0.025"]["border_share"] < report["margins"]["0.1"]["border_share"] < 0.5

    # The native figure, recomputed here: the detector's own boxes decide which faces count, and the classifier
    # (face and mirror averaged) reads those faces in the dataset's framing.
    detector = registry.create(registry.DEFAULT)
    canvas = Canvas()
    classifier = EmotionClassifier(model, flip_average=True)
    found_faces, found_labels, found_boxes = [], [], []
    for index, label in enumerate(emotions.LABELS):
        for face in chosen[label]:
            frame, (fx, fy, side) = canvas.place(face)
            inside = [d for d in detector.detect(frame)
                      if fx <= d.x + d.w / 2 < fx + side and fy <= d.y + d.h / 2 < fy + side]
            if inside:
                found_faces.append(face)
                found_labels.append(index)
                d = inside[0]
                found_boxes.append(((d.x - fx) / side, (d.y - fy) / side, d.w / side, d.h / side))
    assert len(found_faces) == report["detected"]
    x, y = np.stack(found_faces), np.array(found_labels)
    native = classifier.predict(crop_contract.normalise(x)).argmax(axis=1)
    assert report["native"]["accuracy"] == pytest.approx(float((native == y).mean()), abs=1e-4)
    through = classifier.predict(crop_contract.normalise(crops(x, np.array(found_boxes), 0.1, canvas)))
    assert report["through_detector"]["accuracy"] == pytest.approx(float((through.argmax(axis=1) == y).mean()),
                                                                   abs=1e-4)
    assert report["boxes"] == box_statistics(np.array(found_boxes))


def test_without_margins_the_model_s_own_contract_margin_is_the_headline(face_folder, tmp_path):
    """A device crops each model with its stored margin; so does the evaluation unless told otherwise."""
    root, _ = face_folder
    detector = registry.create(registry.DEFAULT)
    data = provenance.read(shipped_model().read_bytes())
    for margin in (0.1, 0.025):
        model = tmp_path / f"m{margin}.tflite"
        model.write_bytes(provenance.embed(shipped_model().read_bytes(),
                                           {**data, "input": {**crop_contract.CONTRACT.as_dict(), "margin": margin}}))
        report = evaluate_through_detector(str(model), str(root), detector.detect, subset=14, flip=False,
                                           progress=False)
        assert report["margin"] == report["contract_margin"] == margin and list(report["margins"]) == [f"{margin:g}"]
        assert report["n"] == 14 and report["flip_average"] is False


def test_border_share_is_the_part_of_the_square_outside_the_frame():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0]])
    np.testing.assert_allclose(border_share(boxes, 0.0), [0.0, 0.0, 0.25])  # a narrow box's square: 1/4 outside
    np.testing.assert_allclose(border_share(boxes, 0.25), [1 - 1 / 2.25, 0.0, 1 - 1 / 2.25])


def test_canvas_fills_and_placement():
    face = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    for fill in ("gray", "mean", "replicate"):
        frame, (fx, fy, side) = Canvas(scale=2, pad=0.25, fill=fill).place(face)
        assert frame.shape == (144, 144, 3) and (fx, fy, side) == (24, 24, 96)
        assert np.array_equal(frame[fy:fy + side, fx:fx + side, 0], cv2.resize(face, (96, 96)))
        corner = frame[0, 0, 0]
        if fill == "gray":
            assert corner == 128
        elif fill == "replicate":
            assert corner == frame[fy, fx, 0]
    with pytest.raises(ValueError, match="fill"):
        Canvas(fill="noise")


def test_bad_margins_are_named(face_folder, capsys):
    root, _ = face_folder
    assert main(["evaluate", str(shipped_model()), str(root), "--through-detector", "--margins", "a"]) == 2
    assert "--margins" in capsys.readouterr().err
