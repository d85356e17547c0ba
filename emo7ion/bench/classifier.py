"""``emo7ion bench classifier``: faces per second of the Keras model and each TFLite variant at batch 1
and 32 with 1 and 2 threads, beside the multiply-accumulates per face and the CPU's float32 limit, so
the distance to the arithmetic bound is visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emo7ion.bench.machine import cpu_info
from emo7ion.converter.parity import faces_per_second
from emo7ion.core.runtime import EmotionClassifier, interpreter_class


def keras_macs(model_path: Path) -> int | None:
    try:
        import keras

        from emo7ion.training.models import count_macs
    except ImportError:
        return None
    return count_macs(keras.models.load_model(model_path, compile=False))


def tflite_macs(model_path: Path) -> int | None:
    """Multiply-accumulates per face counted from the TFLite graph's convolutions and dense layers, so the
    figure exists on a device without Keras. None if the interpreter does not list its operators."""
    Interpreter, _ = interpreter_class()
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    try:
        operators = interpreter._get_ops_details()  # noqa: SLF001  the one way to read the graph without TF
    except AttributeError:
        return None
    shapes = {t["index"]: [int(v) for v in t["shape"]] for t in interpreter.get_tensor_details()}
    total = 0
    for op in operators:
        name, inputs, outputs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(inputs) < 2:
            continue
        out, kernel = shapes[outputs[0]], shapes[inputs[1]]
        if name == "CONV_2D":  # out (1, H, W, C) x kernel (C, kh, kw, Cin)
            total += int(np.prod(out[1:])) * int(np.prod(kernel[1:]))
        elif name == "DEPTHWISE_CONV_2D":  # kernel (1, kh, kw, C)
            total += int(np.prod(out[1:])) * kernel[1] * kernel[2]
        else:  # kernel (units, inputs)
            total += int(np.prod(out[1:])) * kernel[-1]
    return total or None


def run(models: list[Path], batches=(1, 32), threads=(1, 2), faces: np.ndarray | None = None,
        flips=(False, True)) -> dict:
    """``flips``: each TFLite variant alone and with flip averaging (face + mirror in one batch of 2N)."""
    rng = np.random.default_rng(0)
    faces = rng.random((512, 48, 48, 1), dtype=np.float32) if faces is None else faces
    info = cpu_info()
    macs = None
    macs_of: dict[str, int | None] = {}
    rows = []
    for path in models:
        if path.suffix == ".keras":
            import keras

            macs = macs or keras_macs(path)
            macs_of[path.name] = macs
            model = keras.models.load_model(path, compile=False)
            for batch in batches:
                speed = faces_per_second(lambda b, m=model: np.asarray(m(b, training=False)), faces, batch,
                                         min_faces=64)
                rows.append({"model": path.name, "variant": "keras", "batch": batch, "threads": "tf default",
                             "faces_per_second": round(speed, 1)})
            continue
        macs_of[path.name] = tflite_macs(path)
        macs = macs or macs_of[path.name]
        for thread_count in threads:
            for flip in flips:
                classifier = EmotionClassifier(path, num_threads=thread_count, max_batch=2 * max(batches),
                                               flip_average=flip)
                for batch in batches:
                    speed = faces_per_second(classifier.predict, faces, batch)
                    rows.append({"model": path.name, "variant": classifier.model_id["variant"], "batch": batch,
                                 "threads": thread_count, "flip": flip, "faces_per_second": round(speed, 1)})
    for row in rows:
        model_macs = macs_of.get(row["model"]) or macs
        if model_macs:  # flip averaging runs each face twice
            passes = 2 if row.get("flip") else 1
            row["gmacs_per_second"] = round(row["faces_per_second"] * model_macs * passes / 1e9, 2)
    return {"machine": info, "macs_per_face": macs, "rows": rows}


def table(result: dict) -> str:
    info, macs = result["machine"], result["macs_per_face"]
    lines = [f"{info['cpu']}: float32 limit ~{info['peak_fp32_gmacs_per_core']} GMAC/s per core "
             f"({info['fp32_macs_per_cycle']} MAC/cycle at {info['mhz']} MHz); "
             f"{macs / 1e6:.1f} M MAC per face" if macs else "MACs per face unknown",
             "", f"{'model':<32} {'variant':<13} {'flip':>5} {'batch':>5} {'threads':>10} {'faces/s':>9} {'GMAC/s':>8}"]
    for row in result["rows"]:
        flip = {True: "yes", False: "no"}.get(row.get("flip"), "-")
        lines.append(f"{row['model']:<32} {row['variant']:<13} {flip:>5} {row['batch']:>5} {row['threads']!s:>10} "
                     f"{row['faces_per_second']:>9.1f} {_gmacs(row):>8}")
    return "\n".join(lines)


def _gmacs(row: dict) -> str:
    value = row.get("gmacs_per_second")
    return "-" if value is None else f"{value:.2f}"
