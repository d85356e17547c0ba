"""CenterFace with int8 weights and activations (static QDQ): the same network, decoding, options and tiling as
:mod:`.centerface`, at a fraction of its time on a CPU with int8 dot-product instructions (x86 VNNI, Arm v8.2
``sdot``/``udot`` as on a Raspberry Pi 5's Cortex-A76). A Pi 4's Cortex-A72 has no dot-product instructions and
may gain little: measure on the device (docs/benchmarks.md).

The int8 file ships with the package (``centerface_int8.onnx``), made from the shipped float weights by
``scripts/quantize_centerface.py``; its provenance (source sha256, calibration images, settings, versions) is
``centerface_int8.json`` beside it, and its recall matches the float model's within 0.02 in every face-size bin
of the crowd sample (``emo7ion edge detector-parity``; tests/test_detect_int8.py), and on large faces too
(FER2013 through the detector, the demo's faces) since its depthwise convolutions keep one weight scale per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emo7ion.edge.detect import centerface, weights
from emo7ion.edge.detect.centerface import CenterFaceDetector

KEY = "centerface-int8"


@dataclass
class Options(centerface.Options):
    model_path: str = field(default="", metadata={"help": "int8 CenterFace .onnx file (default: the one shipped "
                                                          "with the package, quantized from the float one)"})
    threshold: float = field(default=0.3, metadata={"help": "lowest face score kept, 0..1 (float's: the int8 "
                                                            "model keeps float's recall and false positives at "
                                                            "it on the crowd sample)"})


class CenterFaceInt8Detector(CenterFaceDetector):
    """CenterFace on the int8 model: onnxruntime fuses its QuantizeLinear/DequantizeLinear pairs into int8
    convolutions when the session is built."""

    key = KEY
    weights_file = weights.CENTERFACE_INT8

    def __init__(self, options: Options | None = None):
        super().__init__(options or Options())
