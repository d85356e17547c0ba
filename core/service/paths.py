"""Where a process keeps its files when the user names none: a per-user data directory, never the working
directory (a service started from ``/`` or a home folder must not scatter SQLite files there)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$EMO7ION_DATA_DIR``, else ``$XDG_DATA_HOME/emo7ion``, else ``~/.local/share/emo7ion``; created on demand."""
    chosen = os.environ.get("EMO7ION_DATA_DIR")
    if not chosen:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        chosen = str(Path(base) / "emo7ion")
    folder = Path(chosen).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def default_file(name: str) -> str:
    return str(data_dir() / name)
