#!/usr/bin/env python3
"""Make the int8 CenterFace detector (``centerface-int8``): static QDQ quantization of the shipped float weights.

Why static QDQ, U8S8, MinMax: on the crowd sample, unsigned-8-bit activations with signed-8-bit weights ran in
0.36-0.52x the float time with unchanged recall, while S8S8 ran in only 0.8-0.9x (onnxruntime's x86 int8
kernels are fastest for u8 x s8). Why one weight scale per channel in the depthwise convolutions only: with one
scale per weight tensor, a depthwise filter's few large channels set the step for all of them, and large faces
(FER2013 faces of ~190 px, the demo's 80-170 px faces) lost 5-7 points of recall; per channel there, and per
tensor everywhere else, the int8 model finds what float finds at float's threshold, at the same speed. Static
quantization fixes each activation's range from calibration images, so a frame pays no range search at run time.
The calibration images are crowd photos, read where they lie (WIDER FACE is licensed for research only: they are
never copied into the project), fed through the detector's own preprocessing at the frame sizes the agent runs.
(Zoomed crops of the same photos, faces of 80-240 px, added to the calibration did not help large faces: the loss
was in the weight scales, not in clipped activation ranges.)

Needs the ``onnx`` package (``pip install -e ".[quantize]"``): only here, never on a device. Writes the model
and, beside it, a JSON provenance record (source sha256, calibration images, settings, versions, command);
running it again with the same inputs and versions gives the same bytes (``--check`` says whether it did).

    .venv/bin/python scripts/quantize_centerface.py --images ../shared/data/crowd-sample/images
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "edge" / "detect" / "weights"
DEFAULT_SIZES = "native,1280x720,1920x1080"
"""Each calibration image at its own size (1024 px wide in the sample), as a 720p and as a 1080p frame: the
activation ranges then cover what the agent feeds the detector (``upscale`` 1.5 of 720p is 1920x1080)."""
OPSET = 13
WEIGHT_SCALES = {"depthwise": "per output channel in the depthwise convolutions, per tensor elsewhere",
                 "tensor": "per tensor", "channel": "per output channel"}
HEADS = {"537": "heatmap (after its sigmoid)", "538": "log box size", "539": "centre offset", "540": "landmarks"}
"""The graph's outputs. With ``--float-heads`` the four 1x1 head convolutions (and the heatmap's sigmoid) that
make them stay float, in case 256 steps of box size or offset cost IoU on small faces; measured on the crowd
sample they do not (the int8 model's loss is its scores, a median 0.05 lower), so the default quantizes them."""
"""The float file is opset 9; QDQ with per-channel weights needs 13."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def calibration_blobs(images: list[Path], sizes: list[str]):
    """The detector's own input blobs (RGB float NCHW, sides padded to 32) for each image at each size."""
    import cv2

    from emo7ion.edge.detect.centerface import CenterFaceDetector

    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path} is not an image OpenCV can read")
        for size in sizes:
            if size == "native":
                width, height = image.shape[1], image.shape[0]
            else:
                width, height = (int(v) for v in size.lower().split("x"))
            yield CenterFaceDetector._preprocess(image, width, height)


def float_model_for_quantization(source: Path, scratch: Path) -> Path:
    """The float model with free input sizes, weights out of the graph inputs, at opset 13, shapes inferred and
    batch norms folded (onnxruntime's quant_pre_process): what the quantizer expects."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from emo7ion.edge.detect.onnx_shapes import free_input_dims

    model = onnx.load_from_string(free_input_dims(source.read_bytes()))
    for node in model.graph.node:  # the export names no node: name each by its output, for nodes_to_exclude
        node.name = node.name or f"{node.op_type}_{node.output[0]}"
    model = version_converter.convert_version(model, OPSET)
    converted = scratch / "float-opset13.onnx"
    onnx.save(model, converted)
    prepared = scratch / "float-prepared.onnx"
    quant_pre_process(str(converted), str(prepared), skip_symbolic_shape=True)
    return prepared


def head_nodes(model) -> list[str]:
    """Names of the nodes that compute the graph's outputs from the last shared feature map."""
    producers = {out: node for node in model.graph.node for out in node.output}
    names = []
    for output in HEADS:
        node = producers[output]
        names.append(node.name)
        if node.op_type == "Sigmoid":
            names.append(producers[node.input[0]].name)
    return names


def depthwise_weights(model) -> list[str]:
    """Weight initializers of the convolutions with more than one group (MobileNetV2's depthwise ones)."""
    initializers = {init.name for init in model.graph.initializer}
    return [node.input[1] for node in model.graph.node
            if node.op_type == "Conv" and node.input[1] in initializers
            and next((a.i for a in node.attribute if a.name == "group"), 1) > 1]


def quantize(source: Path, output: Path, images: list[Path], sizes: list[str], weight_scales: str,
             activations: str, float_heads: bool, method: str = "minmax") -> dict:
    """Writes the int8 model to ``output`` and returns its provenance record."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str):
            self.blobs = calibration_blobs(images, sizes)
            self.input_name = input_name

        def get_next(self):
            blob = next(self.blobs, None)
            return None if blob is None else {self.input_name: blob}

    METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    activation_type = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}[activations]
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = float_model_for_quantization(source, Path(scratch))
        model = onnx.load(prepared)
        excluded = head_nodes(model) if float_heads else []
        per_channel = depthwise_weights(model) if weight_scales == "depthwise" else []
        quantize_static(str(prepared), str(output), Reader(model.graph.input[0].name), quant_format=QuantFormat.QDQ,
                        per_channel=weight_scales == "channel", activation_type=activation_type,
                        weight_type=QuantType.QInt8, calibrate_method=METHODS[method], nodes_to_exclude=excluded,
                        extra_options={"TensorQuantOverrides": {name: [{"axis": 0}] for name in per_channel}})
    return {
        "file": output.name, "sha256": sha256(output), "bytes": output.stat().st_size,
        "source": {"file": source.name, "sha256": sha256(source)},
        "calibration": {"images": [{"file": p.name, "sha256": sha256(p)} for p in images], "sizes": sizes,
                        "set": "WIDER FACE validation crowd sample (../shared/data/crowd-sample), research "
                               "licence, not redistributed"},
        "quantization": {"format": "QDQ", "activations": {"u8": "QUInt8", "s8": "QInt8"}[activations],
                         "weights": "QInt8", "weight_scales": WEIGHT_SCALES[weight_scales],
                         "per_channel_weights": per_channel, "calibrate_method": METHODS[method].name,
                         "float_nodes": excluded,
                         "opset": OPSET, "pre_process": "onnxruntime quant_pre_process (symbolic shapes skipped)"},
        "versions": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
                     "python": sys.version.split()[0]},
        "command": "python scripts/quantize_centerface.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Example: %(prog)s --images ../shared/data/crowd-sample/images")
    parser.add_argument("--images", type=Path, required=True,
                        help="folder of crowd photos to calibrate on (read in place, never copied)")
    parser.add_argument("--source", type=Path, default=WEIGHTS / "centerface.onnx",
                        help="the float CenterFace model (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=WEIGHTS / "centerface_int8.onnx",
                        help="the int8 model to write; its provenance goes beside it as .json "
                             "(default: the shipped package data)")
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help="comma-separated frame sizes each image is calibrated at: 'native' or WxH "
                             "(default: %(default)s)")
    parser.add_argument("--activations", choices=["u8", "s8"], default="u8",
                        help="activation type: u8 (U8S8, fast on x86 and on Arm dot-product) or s8 (S8S8) "
                             "(default: %(default)s)")
    parser.add_argument("--weight-scales", choices=list(WEIGHT_SCALES), default="depthwise",
                        help="one weight scale per output channel in the depthwise convolutions and one per tensor "
                             "elsewhere (depthwise), one per tensor everywhere (tensor: large faces lose 5-7 points "
                             "of recall), or one per channel everywhere (channel: 16-32 px recall -0.026 at "
                             "threshold 0.3) (default: %(default)s)")
    parser.add_argument("--calibrate", choices=["minmax", "percentile", "entropy"], default="minmax",
                        help="how activation ranges are set from the calibration images; percentile and entropy "
                             "need every image at one size (one --sizes WxH) (default: %(default)s)")
    parser.add_argument("--float-heads", action="store_true",
                        help="keep the four output heads float (measured: no better recall, see HEADS)")
    parser.add_argument("--check", action="store_true",
                        help="quantize into a scratch folder and say whether the result is byte-identical to --out")
    args = parser.parse_args()

    try:
        import onnx  # noqa: F401
    except ImportError:
        parser.error('needs the onnx package: pip install -e ".[quantize]" (quantization time only)')
    if not args.source.is_file():
        parser.error(f"--source {args.source} not found")
    if not args.images.is_dir():
        parser.error(f"--images {args.images} is not a folder")
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not images:
        parser.error(f"no .jpg/.png images in {args.images}")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]

    if args.check:
        with tempfile.TemporaryDirectory() as scratch:
            record = quantize(args.source, Path(scratch) / args.out.name, images, sizes, args.weight_scales,
                              args.activations, args.float_heads, args.calibrate)
        shipped = sha256(args.out) if args.out.is_file() else None
        same = record["sha256"] == shipped
        print(f"{'same bytes as' if same else 'DIFFERS from'} {args.out}: {record['sha256']} "
              f"(shipped {shipped}; onnxruntime {record['versions']['onnxruntime']})")
        return 0 if same else 1
    record = quantize(args.source, args.out, images, sizes, args.weight_scales, args.activations,
                      args.float_heads, args.calibrate)
    provenance = args.out.with_suffix(".json")
    provenance.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out} ({record['bytes']:,} bytes, sha256 {record['sha256']}) and {provenance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
