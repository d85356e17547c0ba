"""Files that ship inside the package (the released classifiers), found through ``importlib.resources`` so a
checkout, an editable install and a wheel in site-packages all resolve the same way."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "emo7ion-edge-int8.tflite"
"""The device's classifier, released into ``models/`` (package ``emo7ion.models``)."""


def models_dir() -> Path:
    """The folder of the shipped models (a plain folder: wheels install unzipped)."""
    return Path(str(resources.files("emo7ion.models")))


def shipped_model(name: str = DEFAULT_MODEL) -> Path:
    return models_dir() / name
