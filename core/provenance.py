"""Provenance embedded in a ``.tflite`` file: labels, input contract, source model hash, variant.

The JSON rides after the flatbuffer with a length and a magic trailer (the interpreter ignores bytes
past the model, the way TFLite's own associated-file zip does), so the model file alone tells a device
what it is and a copied file cannot lose its sidecar.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

MAGIC = b"EMO7META"
_TRAILER = struct.Struct("<Q8s")  # JSON length, magic
SCHEMA = 1
REQUIRED = ("version", "variant", "labels", "input")
"""What ``emo7ion convert`` always writes and a device relies on: the version its windows report, and the labels
and input contract it reads faces with."""
_CUT_TELLTALE = b'"labels": ['
"""A piece of every embedded JSON (written with sorted keys and default separators): found near the end of a file
that has no trailer, it says the file was cut short rather than made without provenance."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embed(model_bytes: bytes, metadata: dict) -> bytes:
    """The model bytes with ``metadata`` appended; any earlier embedded metadata is replaced."""
    model_bytes = strip(model_bytes)
    blob = json.dumps({"schema": SCHEMA, **metadata}, sort_keys=True).encode()
    return model_bytes + blob + _TRAILER.pack(len(blob), MAGIC)


def strip(data: bytes) -> bytes:
    """The flatbuffer alone, without our trailer."""
    found = _locate(data)
    return data if found is None else data[: found[0]]


def read(data: bytes) -> dict | None:
    """The embedded metadata, or None for a plain TFLite file. Raises ValueError if it is damaged."""
    found = _locate(data)
    if found is None:
        return None
    start, end = found
    try:
        metadata = json.loads(data[start:end])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"embedded model metadata is not valid JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise ValueError("embedded model metadata is not a JSON object")
    return metadata


def unversioned(data: bytes) -> str | None:
    """Why a classifier file cannot say what it is (no provenance, provenance cut short, a field missing or of
    another schema), or None when its provenance is whole. A damaged trailer is read()'s ValueError, not this."""
    metadata = read(data)
    if metadata is None:
        if _CUT_TELLTALE in data[-(1 << 16):]:
            return ("its provenance is cut short (the JSON is there, the trailer after it is not): the file was "
                    "truncated, e.g. by an interrupted copy")
        return "it carries no provenance (a file not written by emo7ion convert)"
    if metadata.get("schema") != SCHEMA:
        return f"its provenance is of schema {metadata.get('schema')!r}, this runtime reads schema {SCHEMA}"
    missing = [key for key in REQUIRED if not metadata.get(key)]
    if missing:
        return f"its provenance lacks {', '.join(missing)}"
    return None


def _locate(data: bytes) -> tuple[int, int] | None:
    if len(data) < _TRAILER.size or data[-8:] != MAGIC:
        return None
    length, _ = _TRAILER.unpack(data[-_TRAILER.size:])
    end = len(data) - _TRAILER.size
    start = end - length
    if start < 0:
        raise ValueError("embedded model metadata is truncated")
    return start, end
