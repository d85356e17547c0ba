"""The installed distribution's version, read once from its metadata: ``pyproject.toml`` is the only place it
is written. A source checkout that was never installed reads the file itself."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "emo7ion"
UNKNOWN = "0+unknown"


@cache
def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return _from_source_checkout(Path(__file__).resolve().parents[2] / "pyproject.toml")


def _from_source_checkout(pyproject: Path) -> str:
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return UNKNOWN
    return str(project.get("version", UNKNOWN)) if project.get("name") == DISTRIBUTION else UNKNOWN
