"""A folder or glob of still images replayed as a camera: for tests, demos and audits."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from emo7ion.edge.sources.base import FrameSource, SourceError

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.suffix.lower() in SUFFIXES]
    else:
        files = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).suffix.lower() in SUFFIXES]
    return files


class ImageFolderSource(FrameSource):
    name = "images"

    def __init__(self, spec: str, loop: bool = True, width: int | None = None):
        self.spec = spec
        self.loop = loop
        self.width = width
        self._files: list[Path] = []
        self._index = 0

    def open(self) -> None:
        self._files = list_images(self.spec)
        if not self._files:
            raise SourceError(f"no images ({', '.join(SUFFIXES)}) in {self.spec}")
        self._index = 0

    def read(self) -> np.ndarray | None:
        import cv2

        if self._index >= len(self._files):
            if not self.loop:
                return None
            self._index = 0
        file = self._files[self._index]
        self._index += 1
        frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if frame is None:
            raise SourceError(f"cannot read image {file}")
        return frame

    @property
    def paced(self) -> bool:
        return False

    @property
    def exhausted(self) -> bool:
        return not self.loop and self._index >= len(self._files)
