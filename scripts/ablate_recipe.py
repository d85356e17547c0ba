#!/usr/bin/env python3
"""Ablation of the training recipe on val: one resample vs three, BatchNorm momentum 0.9 vs 0.99.

Each arm trains the `edge` net from the same seed on the same stratified subset for the same epochs, and
its best checkpoint is scored on the WHOLE val split (PublicTest), so arms differ only in what is ablated.
Small runs: read the table as direction and rough size, not as the full-data figures.

    .venv/bin/python scripts/ablate_recipe.py --subset 5000 --epochs 8 --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

ARMS = {  # name: (three_resamples, bn_momentum); run in this order, each saved as soon as it is scored
    "1.1 recipe: three resamples, BN 0.99": (True, 0.99),
    "three resamples, BN 0.9": (True, 0.9),
    "one resample, BN 0.9 (1.2 recipe)": (False, 0.9),
    "one resample, BN 0.99": (False, 0.99),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/fer2013/fer2013.tar.gz")
    parser.add_argument("--subset", type=int, default=5000, help="training faces per arm (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="runs/ablation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from emo7ion.training.evaluate import evaluate
    from emo7ion.training.train import TrainConfig, train

    out = Path(args.out)
    results_file = out / "ablation.json"
    saved = json.loads(results_file.read_text()) if results_file.exists() else {}
    results = saved.get("arms", saved)  # also reads the first, flat format
    setup = {"subset": args.subset, "epochs": args.epochs, "seed": args.seed, "data": args.data,
             "scored_on": "val (PublicTest), all 3,589 faces"}
    for name, (three, bn) in ARMS.items():
        if name in results:
            continue
        run = out / name.split(":")[0].replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
        summary = train(TrainConfig(data=args.data, out=str(run), epochs=args.epochs, subset=args.subset,
                                    seed=args.seed, patience=args.epochs, three_resamples=three,
                                    hparams={"bn_momentum": bn}), resume=True)
        scored = evaluate(summary["model"], args.data, split="val", batch_size=256, progress=False)
        results[name] = {"three_resamples": three, "bn_momentum": bn, "val_accuracy": scored["accuracy"],
                         "macro_f1": scored["macro_f1"], "best_epoch": summary["best_epoch"]}
        out.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps({"setup": setup, "arms": results}, indent=2))
        print(f"{name}: val {100 * scored['accuracy']:.2f}%", flush=True)
    print(f"\n| arm | val (PublicTest, {args.subset} training faces, {args.epochs} epochs) | macro F1 |")
    print("| --- | --- | --- |")
    for name, row in results.items():
        print(f"| {name} | {100 * row['val_accuracy']:.2f}% | {row['macro_f1']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
