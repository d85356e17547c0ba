"""The face detectors' weights, shipped inside the package so ``pip install "emo7ion[edge]"`` is complete.

Files and their licences: ``LICENSES.md`` beside this module. :func:`path` finds one through
``importlib.resources``, so it works the same from a checkout, an editable install and a wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CENTERFACE = "centerface.onnx"
CENTERFACE_INT8 = "centerface_int8.onnx"
"""Made from CENTERFACE by scripts/quantize_centerface.py; its provenance is ``centerface_int8.json``."""
BLAZEFACE = {"full": "face_detection_full_range.tflite", "short": "face_detection_short_range.tflite"}


def path(name: str) -> Path:
    """The installed file ``name`` of this package (a plain file: wheels install unzipped)."""
    return Path(str(resources.files(__name__).joinpath(name)))
