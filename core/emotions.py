"""The seven emotion labels in the one canonical order every model, payload and report uses."""

from __future__ import annotations

from collections.abc import Sequence

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
"""Canonical order: alphabetical, so image-folder datasets sort into it naturally."""

NUM_CLASSES = len(LABELS)

FER2013_CSV_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Kaggle's fer2013.csv codes: 0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral."""

POSITIVE: frozenset[str] = frozenset({"happy", "surprise"})
NEGATIVE: frozenset[str] = frozenset({"angry", "disgust", "fear", "sad"})

_ALIASES = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "scared": "fear",
            "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise",
            "calm": "neutral"}


def normalise_label(name: str) -> str:
    """Map a folder or csv spelling ('Happy', 'sadness') to the canonical label, or raise."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LABELS:
        raise ValueError(f"unknown emotion label {name!r}; expected one of {', '.join(LABELS)}")
    return key


def index_of(name: str) -> int:
    return LABELS.index(normalise_label(name))


def remap_from(order: Sequence[str]) -> list[int]:
    """For a model or dataset whose class i is ``order[i]``, the canonical index of each of its classes."""
    canonical = [index_of(name) for name in order]
    if sorted(canonical) != list(range(len(canonical))) or len(canonical) != NUM_CLASSES:
        raise ValueError(f"label order {list(order)} is not a permutation of the seven emotions")
    return canonical


def fer2013_csv_to_canonical(code: int) -> int:
    """The canonical index for a FER2013 csv ``emotion`` code (0..6)."""
    if not 0 <= int(code) < NUM_CLASSES:
        raise ValueError(f"FER2013 emotion code {code!r} is outside 0..6")
    return LABELS.index(FER2013_CSV_ORDER[int(code)])
