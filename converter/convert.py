"""``emo7ion convert``: Keras model -> every TFLite variant, with provenance, proved on val.

All files are made in a scratch folder beside OUTDIR and moved in only when every variant converted
and passed, so a failure never leaves a half-written OUTDIR. A full-integer model that loses more than
``max_drop`` points of accuracy is rejected (kept in ``OUTDIR.rejected`` for inspection).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emo7ion.converter import parity, report, variants
from emo7ion.core import emotions, faces, provenance
from emo7ion.core.service.errors import UserError
from emo7ion.core.service.version import version
from emo7ion.training import data as datasets

log = logging.getLogger(__name__)


class ParityError(UserError, RuntimeError):
    """The full-integer model fell further below the Keras model than allowed."""


def load_keras(path: Path):
    import keras

    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # a damaged zip, a bad config or missing custom objects
        raise ValueError(f"{path} is not a loadable .keras model: {error}") from error


def keras_probabilities(model, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i:i + 256], training=False)) for i in range(0, len(x), 256)])


def machine_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def _metadata(variant: str, source: Path, source_sha: str, model_version: str) -> dict:
    import tensorflow as tf

    return {"labels": list(emotions.LABELS), "input": faces.CONTRACT.as_dict(), "variant": variant,
            "version": model_version, "source_model": source.name, "source_sha256": source_sha,
            "converter": f"emo7ion {version()}", "tensorflow": tf.__version__,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def convert(model_path: str | Path, data: str | Path, out: str | Path, val: str | Path | None = None,
            calibration: int = 500, max_drop: float = 1.0, model_version: str | None = None,
            seed: int = 7, progress: bool = True, command: str = "") -> dict:
    """Convert, prove and write the variants; returns the report. Raises ParityError on a failed check."""
    from tqdm import tqdm

    model_path, out = Path(model_path), Path(out)
    model = load_keras(model_path)
    calibration_set = datasets.load(data, "train").subset(calibration, seed)
    val_set = datasets.load(val, None) if val else datasets.load(data, "val")
    val_x = faces.normalise(val_set.x)
    source_sha = provenance.sha256_file(model_path)
    model_version = model_version or f"{model_path.stem}-{source_sha[:12]}"

    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        reference = keras_probabilities(model, val_x)
        keras_row = {"accuracy": round(float((reference.argmax(1) == val_set.y).mean()), 4),
                     "size_bytes": model_path.stat().st_size,
                     "faces_per_second_b1": round(parity.faces_per_second(
                         lambda b: np.asarray(model(b, training=False)), val_x[:512], 1, min_faces=64), 1),
                     "faces_per_second_b32": round(parity.faces_per_second(
                         lambda b: np.asarray(model(b, training=False)), val_x[:512], 32), 1)}
        rows = {}
        files = {}
        with tqdm(total=len(variants.VARIANTS), desc="convert", unit="variant", disable=not progress) as bar:
            for variant in variants.VARIANTS:
                bar.set_postfix_str(variant + (" (calibrating)" if variant == "int8" else ""))
                blob = variants.convert(model, variant, faces.normalise(calibration_set.x))
                path = scratch / f"{model_path.stem}-{variant}.tflite"
                path.write_bytes(provenance.embed(blob, _metadata(variant, model_path, source_sha, model_version)))
                files[variant] = path
                bar.update(1)
        with tqdm(total=len(val_x) * len(files), desc="validate", unit="face", disable=not progress) as bar:
            for variant, path in files.items():
                rows[variant] = parity.prove(path, val_x, val_set.y, reference, progress=bar)
        result = _report(model_path, source_sha, model_version, data, val_set, calibration_set, keras_row, rows,
                         max_drop, command)
        (scratch / "report.json").write_text(json.dumps(result, indent=2))
        (scratch / "report.md").write_text(report.markdown(result))
        if not result["checks"]["drop_ok"]:
            rejected = out.with_name(out.name + ".rejected")
            shutil.rmtree(rejected, ignore_errors=True)
            os.replace(scratch, rejected)
            raise ParityError(
                f"the int8 model's val accuracy is {result['checks']['int8_drop_points']:.2f} points below the "
                f"Keras model's (allowed: {max_drop:.2f}); nothing was written to {out}; the rejected files are "
                f"in {rejected}")
        out.mkdir(parents=True, exist_ok=True)
        for file in sorted(scratch.iterdir()):
            os.replace(file, out / file.name)
        result["out"] = str(out)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _report(model_path, source_sha, model_version, data, val_set, calibration_set, keras_row, rows, max_drop,
            command):
    from emo7ion.core.runtime import interpreter_class

    drop = 100.0 * (keras_row["accuracy"] - rows["int8"]["accuracy"])
    return {
        "source": {"file": model_path.name, "sha256": source_sha, "version": model_version},
        "val": {"data": val_set.source, "n": len(val_set)},
        "calibration": {"data": str(data), "n": len(calibration_set), "counts": calibration_set.class_counts()},
        "keras": keras_row,
        "variants": rows,
        "checks": {"int8_drop_points": round(drop, 3), "max_drop_points": max_drop, "drop_ok": drop <= max_drop,
                   "int8_size_ratio": round(rows["int8"]["size_bytes"] / rows["float32"]["size_bytes"], 4),
                   "int8_speedup_b1": round(rows["int8"]["faces_per_second_b1"]
                                            / rows["float32"]["faces_per_second_b1"], 3)},
        "interpreter": interpreter_class()[1],
        "machine": machine_name(),
        "command": command,
    }
