"""Face detectors of the edge agent: one plugin per file, found and configured by :mod:`.registry`.

Use ``registry.create(registry.DEFAULT)`` for the measured default, or ``registry.create({"type": ...})``.
"""

from emo7ion.edge.detect.base import Detection, DetectorError, FaceDetector

__all__ = ["Detection", "DetectorError", "FaceDetector"]
