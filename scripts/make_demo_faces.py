#!/usr/bin/env python3
"""Builds ``emo7ion/demo/faces.npz``, the small face set the demo composes into crowd frames.

Source: FER2013 PublicTest (our 'val' split), ``PER_CLASS`` faces of each emotion drawn at random with
a fixed seed; stored as uint8 48x48 gray with their labels. Run once by a maintainer (it needs the training
extra); it lives here, not in the package, so the wheel carries the faces but not the tool that made them:
``.venv/bin/python scripts/make_demo_faces.py ../shared/data/fer2013/fer2013.tar.gz [TARGET]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

PER_CLASS = 40
TARGET = Path(__file__).resolve().parents[1] / "emo7ion" / "demo" / "faces.npz"


def build(dataset: str, target: Path = TARGET, per_class: int = PER_CLASS, seed: int = 2013) -> Path:
    from emo7ion.training import data

    val = data.load(dataset, "val")
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.choice(np.flatnonzero(val.y == label), per_class, replace=False)
                            for label in range(int(val.y.max()) + 1)])
    np.savez_compressed(target, faces=val.x[picks], labels=val.y[picks].astype(np.uint8),
                        source=np.array("FER2013 PublicTest (val), random per class, seed 2013"))
    return target


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fer2013/fer2013.tar.gz",
                Path(sys.argv[2]) if len(sys.argv) > 2 else TARGET))
