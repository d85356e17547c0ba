"""Reads FER2013-style data (image folders, a .tar.gz of them, or Kaggle's fer2013.csv) into arrays.

Every reader returns uint8 48x48 faces in the canonical label order and says what it skipped and why:
a stray folder or a broken row is reported, never turned into a wrong label.
"""

from __future__ import annotations

import csv
import logging
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from emo7ion.core import emotions, faces
from emo7ion.core.service.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm")
CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
"""Our split names and the ``Usage`` values of Kaggle's fer2013.csv they stand for."""


class DataError(UserError, ValueError):
    """The data cannot be used as asked; the message names the file or class at fault."""


@dataclass
class FaceDataset:
    """Faces (N, 48, 48) uint8, labels (N,) canonical indices, and what the reader left out."""

    x: np.ndarray
    y: np.ndarray
    source: str
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=emotions.NUM_CLASSES)
        return {label: int(n) for label, n in zip(emotions.LABELS, counts)}

    def subset(self, n: int, seed: int = 0) -> FaceDataset:
        """A class-stratified random subset of about ``n`` faces, for tests and quick searches."""
        if n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        picks = []
        for label in range(emotions.NUM_CLASSES):
            idx = np.flatnonzero(self.y == label)
            take = max(1, int(round(n * len(idx) / len(self)))) if len(idx) else 0
            picks.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
        chosen = np.sort(np.concatenate(picks))
        return FaceDataset(self.x[chosen], self.y[chosen], f"{self.source}[subset {len(chosen)}]", self.skipped)


def load(path: str | Path, split: str | None = None, strict: bool = False) -> FaceDataset:
    """Load ``split`` ('train', 'val', 'test') of a dataset, or the whole of ``path`` when split is None.

    ``path`` may be a folder ``<split>/<emotion>/*.jpg`` (or ``<emotion>/*.jpg`` with split=None), a
    ``.tar.gz`` of such folders, or a Kaggle ``fer2013.csv``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset {path} does not exist")
    name = path.name.lower()
    if path.is_file() and name.endswith(".csv"):
        dataset = load_csv(path, split)
    elif path.is_file() and (name.endswith(".tar.gz") or name.endswith(".tgz") or name.endswith(".tar")):
        dataset = load_archive(path, split, strict)
    elif path.is_dir():
        root = path / split if split and (path / split).is_dir() else path
        if split and root == path and not _has_class_folders(path):
            raise DataError(f"{path} has no '{split}' folder and no emotion folders")
        dataset = load_folder(root, strict)
    else:
        raise DataError(f"{path} is neither a folder, a .tar.gz of folders, nor a .csv file")
    _require_every_class(dataset)
    return dataset


def _has_class_folders(path: Path) -> bool:
    return any(_label_or_none(p.name) for p in path.iterdir() if p.is_dir())


def _label_or_none(name: str) -> str | None:
    try:
        return emotions.normalise_label(name)
    except ValueError:
        return None


def load_folder(root: Path, strict: bool = False) -> FaceDataset:
    """``root/<emotion>/*.jpg``; unknown folders are reported (or fatal with ``strict``)."""
    import cv2

    xs, ys, skipped = [], [], Counter()
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        label = _label_or_none(folder.name)
        if label is None:
            _unknown_folder(folder, strict, skipped)
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped["not an image"] += 1
                continue
            image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if image is None:
                skipped["unreadable image"] += 1
                log.warning("skipping unreadable image %s", file)
                continue
            xs.append(faces.resize_gray(image))
            ys.append(emotions.index_of(label))
    return _finish(xs, ys, str(root), skipped)


def load_archive(path: Path, split: str | None, strict: bool = False) -> FaceDataset:
    """A tar(.gz) holding ``[top/]<split>/<emotion>/*.jpg``, read without unpacking to disk."""
    import cv2

    xs, ys, skipped = [], [], Counter()
    unknown: set[str] = set()
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            parts = PurePosixPath(member.name).parts
            if len(parts) < 2 or PurePosixPath(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            folder = parts[-2]
            if split is not None and (len(parts) < 3 or parts[-3] != split):
                continue
            label = _label_or_none(folder)
            if label is None:
                if folder not in unknown:
                    unknown.add(folder)
                    _unknown_folder(Path(*parts[:-1]), strict, Counter())
                skipped["unknown class folder"] += 1
                continue
            data = np.frombuffer(archive.extractfile(member).read(), np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
            if image is None:
                skipped["unreadable image"] += 1
                log.warning("skipping unreadable image %s in %s", member.name, path)
                continue
            xs.append(faces.resize_gray(image))
            ys.append(emotions.index_of(label))
    if not xs:
        where = f"split '{split}' of " if split else ""
        raise DataError(f"no labelled images found in {where}{path}")
    return _finish(xs, ys, f"{path}:{split or '*'}", skipped)


def _unknown_folder(folder: Path, strict: bool, skipped: Counter) -> None:
    message = (f"folder {folder} is not one of the seven emotions ({', '.join(emotions.LABELS)})")
    if strict:
        raise DataError(message)
    if not folder.name.startswith("."):
        log.warning("%s; skipping it", message)
    skipped["unknown class folder"] += 1


def load_csv(path: Path, split: str | None = None) -> FaceDataset:
    """Kaggle's fer2013.csv (emotion, pixels, Usage); bad rows are counted and skipped, never guessed."""
    usage = None
    if split is not None:
        if split not in CSV_USAGE:
            raise DataError(f"unknown split {split!r}; expected one of {', '.join(CSV_USAGE)}")
        usage = CSV_USAGE[split]
    xs, ys, skipped = [], [], Counter()
    bad_rows: list[int] = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path} lacks column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            if usage is not None and (row.get("Usage") or "").strip() != usage:
                continue
            try:
                label = emotions.fer2013_csv_to_canonical(int(row["emotion"]))
                pixels = np.array(row["pixels"].split(), dtype=np.int64)
                if pixels.size != faces.FACE_SIZE**2 or pixels.min() < 0 or pixels.max() > 255:
                    raise ValueError("pixels are not 2304 values in 0..255")
            except (TypeError, ValueError, AttributeError):
                skipped["bad csv row"] += 1
                bad_rows.append(row_number)
                continue
            xs.append(pixels.astype(np.uint8).reshape(faces.FACE_SIZE, faces.FACE_SIZE))
            ys.append(label)
    if bad_rows:
        shown = ", ".join(map(str, bad_rows[:10])) + (" ..." if len(bad_rows) > 10 else "")
        log.warning("%s: skipped %d bad row(s): line %s", path, len(bad_rows), shown)
    return _finish(xs, ys, f"{path}:{split or '*'}", skipped)


def _finish(xs: list, ys: list, source: str, skipped: Counter) -> FaceDataset:
    if not xs:
        raise DataError(f"no labelled images found in {source}")
    x = np.stack(xs).astype(np.uint8)
    y = np.asarray(ys, dtype=np.int64)
    if skipped:
        log.warning("%s: skipped %s", source, ", ".join(f"{n} {why}" for why, n in skipped.items()))
    return FaceDataset(x, y, source, skipped)


def _require_every_class(dataset: FaceDataset) -> None:
    empty = [label for label, n in dataset.class_counts().items() if n == 0]
    if empty:
        raise DataError(f"{dataset.source}: class(es) {', '.join(empty)} have no images")

