#!/usr/bin/env python3
"""Restamp shipped ``.tflite`` classifiers with the current crop contract and a new version: same weights.

Why: a device crops each model's faces with the margin its provenance stores (``core.runtime``), and models
converted before crop contract 2 store contract 1 (margin 0.1). Measured through the detector on val, the same
weights read better at contract 2's margin (models/MODEL_CARD.md), so a release can change the stored contract
alone, without re-converting (which would need TensorFlow and could change the int8 calibration).

Only the provenance trailer (``core.provenance``) changes: ``input`` becomes ``core.faces.CONTRACT`` and
``version`` the one given; every other field (labels, variant, source sha256, converter and TensorFlow
versions, conversion time) is kept, and ``restamped_from`` records the old file's sha256, version and input
contract. The flatbuffer is checked byte-identical before the file is replaced. Nothing time-dependent is
written, so running it again on the same input gives the same bytes; a file already at the target is left alone.

    .venv/bin/python scripts/restamp_model.py --version emo7ion-edge-1.2.1 \\
        models/emo7ion-edge-int8.tflite models/emo7ion-edge-float16.tflite
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from emo7ion.core import faces, provenance


def restamped_metadata(old: dict, old_sha256: str, version: str) -> dict:
    """``old`` with the current crop contract and ``version``, and where it came from."""
    kept = {key: value for key, value in old.items() if key != "schema"}  # embed() writes the schema
    return {**kept, "input": faces.CONTRACT.as_dict(), "version": version,
            "restamped_from": {"sha256": old_sha256, "version": old.get("version"), "input": old.get("input")}}


def restamp(path: Path, version: str, dry_run: bool = False) -> str:
    """Restamp ``path`` in place (atomically); returns a line saying what was done."""
    data = path.read_bytes()
    old = provenance.read(data)
    if old is None:
        raise ValueError(f"{path} carries no provenance: convert it (emo7ion convert), do not restamp it")
    if old.get("version") == version and old.get("input") == faces.CONTRACT.as_dict():
        return f"{path}: already {version} with crop contract {faces.CONTRACT.version}; left alone"
    if old.get("version") == version:
        raise ValueError(f"{path} is already version {version} with another contract: choose a new version")
    old_sha256 = provenance.sha256_file(path)
    new = provenance.embed(data, restamped_metadata(old, old_sha256, version))
    if provenance.strip(new) != provenance.strip(data):
        raise AssertionError(f"{path}: the model bytes changed while restamping")  # embed() must never do this
    stored = faces.FaceCropSpec.stored(provenance.read(new)["input"])
    line = (f"{path}: {old.get('version')} (contract {faces.FaceCropSpec.stored(old.get('input') or {}).version}, "
            f"margin {old.get('input', {}).get('margin')}, sha256 {old_sha256}) -> {version} (contract "
            f"{stored.version}, margin {stored.margin}")
    if dry_run:
        return line + "); dry run, nothing written"
    scratch = path.with_name(f".{path.name}.restamp")
    scratch.write_bytes(new)
    os.replace(scratch, path)
    return line + f", sha256 {provenance.sha256_file(path)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Only the provenance trailer changes; the weights stay byte-identical.")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files with embedded provenance, in place")
    parser.add_argument("--version", required=True, help="the new model version, e.g. emo7ion-edge-1.2.1")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    args = parser.parse_args(argv)
    try:
        for path in args.models:
            print(restamp(path, args.version, args.dry_run))
    except (OSError, ValueError) as error:
        print(f"restamp_model: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
