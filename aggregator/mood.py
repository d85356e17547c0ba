"""The mood arithmetic over summed counts: the share of each emotion weighted by faces, the dominant one and a
positivity index (positive minus negative share, -1..1). :class:`views.Views` applies it to a window."""

from __future__ import annotations

from emo7ion.core import emotions


def shares(counts: dict[str, int]) -> dict[str, float] | None:
    total = sum(counts.values())
    if not total:
        return None
    return {label: round(counts[label] / total, 4) for label in emotions.LABELS}


def positivity(counts: dict[str, int]) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    positive = sum(counts[label] for label in emotions.POSITIVE)
    negative = sum(counts[label] for label in emotions.NEGATIVE)
    return round((positive - negative) / total, 4)


def dominant(counts: dict[str, int]) -> str | None:
    if not sum(counts.values()):
        return None
    return max(emotions.LABELS, key=lambda label: (counts[label], -emotions.LABELS.index(label)))
