"""Crop contract versions: a model states the margin its faces are cropped with, a device crops with it, and a
contract version the device does not know is refused. Models from before versions (1.2 and older) keep 0.1."""

import logging

import numpy as np
import pytest

from emo7ion.core import faces, provenance
from emo7ion.core.runtime import EmotionClassifier, ModelError
from emo7ion.core.service.resources import shipped_model


def restamped(tmp_path, contract: dict | None, name: str = "m.tflite"):
    """The shipped int8 model with its provenance's input contract replaced (None: no provenance at all)."""
    data = shipped_model().read_bytes()
    target = tmp_path / name
    if contract is None:
        target.write_bytes(provenance.strip(data))
    else:
        target.write_bytes(provenance.embed(data, {**provenance.read(data), "input": contract}))
    return target


def test_the_current_contract_is_version_2_with_the_measured_margin():
    assert faces.CONTRACT.as_dict() == {"size": 48, "scale": 1 / 255, "margin": 0.025, "color": "gray",
                                        "version": 2}
    assert faces.FaceCropSpec.stored(faces.CONTRACT.as_dict()) == faces.CONTRACT


def test_a_contract_without_a_version_is_version_1():
    old = {"size": 48, "scale": 1 / 255, "margin": 0.1, "color": "gray"}  # what 1.0-1.2 carry
    assert faces.FaceCropSpec.stored(old) == faces.V1
    assert faces.FaceCropSpec.stored({k: v for k, v in old.items() if k != "margin"}).margin == 0.1


@pytest.mark.parametrize("contract, message", [({"version": 3, "margin": 0.0}, "version 3"),
                                               ({"version": "2", "margin": 0.0}, "version '2'"),
                                               ({"version": 2}, "margin None"),
                                               ({"version": 2, "margin": 1.5}, "margin 1.5"),
                                               ({"version": 2, "margin": True}, "margin True")])
def test_unknown_versions_and_bad_margins_are_refused(contract, message):
    with pytest.raises(ValueError, match=message):
        faces.FaceCropSpec.stored(contract)


def test_the_device_crops_each_model_with_its_stored_margin(tmp_path, caplog):
    shipped = EmotionClassifier(shipped_model())
    stored = provenance.read(shipped_model().read_bytes())["input"]
    assert shipped.crop_margin == stored.get("margin", 0.1)

    v1 = EmotionClassifier(restamped(tmp_path, {**faces.V1.as_dict()} | {"version": 1}, "v1.tflite"))
    v2 = EmotionClassifier(restamped(tmp_path, faces.CONTRACT.as_dict(), "v2.tflite"))
    other = EmotionClassifier(restamped(tmp_path, {**faces.CONTRACT.as_dict(), "margin": 0.2}, "v2b.tflite"))
    assert (v1.crop_margin, v2.crop_margin, other.crop_margin) == (0.1, 0.025, 0.2)
    with caplog.at_level(logging.WARNING):
        bare = EmotionClassifier(restamped(tmp_path, None, "bare.tflite"), allow_unversioned=True)
    assert bare.crop_margin == 0.1 and "carries no provenance" in caplog.text

    # the margin changes what the model sees: a wider square holds more of the frame around the box
    frame = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    box = [(60, 50, 80, 100)]
    tight = faces.prepare_faces(frame, box, v2.crop_margin)
    wide = faces.prepare_faces(frame, box, v1.crop_margin)
    assert not np.allclose(tight, wide)


def test_a_device_refuses_a_contract_version_it_does_not_know(tmp_path):
    with pytest.raises(ModelError, match="version 3 is not one this code knows"):
        EmotionClassifier(restamped(tmp_path, {**faces.CONTRACT.as_dict(), "version": 3}))
