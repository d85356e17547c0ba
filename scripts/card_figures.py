"""Rewrites the measured figures in models/MODEL_CARD.md from the JSON files next to it.

The card's prose is written by hand; its tables are not. Each table sits between
``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` and is regenerated from
``eval-keras-val.json``, ``eval-int8-val.json``, ``conversion-report.json`` and, when present,
``eval-int8-flip-val.json``, ``eval-int8-val-tflite-runtime.json`` and ``ablation-val.json``,
so a release cannot ship a card whose numbers it did not measure.

Usage: python scripts/card_figures.py [MODELS_DIR]   (``--check`` fails if the card is out of date)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from emo7ion.core.emotions import LABELS

INTERPRETERS = {"ai_edge_litert": "LiteRT", "tflite_runtime": "tflite-runtime", "tensorflow": "tf.lite"}


def _load(folder: Path, name: str, required: bool = True) -> dict | None:
    path = folder / name
    if not path.is_file():
        if required:
            sys.exit(f"card_figures: {path} is missing (run scripts/release_model.sh first)")
        return None
    return json.loads(path.read_text())


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size > 1.5 * 2**20 else f"{size / 1024:.0f} KiB"


def _bold(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text


def _interpreter(result: dict) -> str:
    name = result.get("interpreter", "")
    return INTERPRETERS.get(name, name or "unknown interpreter")


def accuracy_table(keras: dict, int8: dict, tflite_runtime: dict | None, int8_flip: dict | None = None) -> str:
    def row(name: str, result: dict, bold: bool = False) -> str:
        top1 = _bold(f"{100 * result['accuracy']:.2f}%", bold)
        per_class = " | ".join(f"{100 * result['per_class'][label]:.1f}" for label in LABELS)
        return f"| {name} | {top1} | {result['macro_f1']:.3f} | {per_class} |"

    lines = ["| model | top-1 | macro F1 | " + " | ".join(LABELS) + " |", "| --- " * (3 + len(LABELS)) + "|",
             row("Keras", keras, bold=True), row(f"int8 ({_interpreter(int8)})", int8)]
    if tflite_runtime:
        lines.append(row(f"int8 ({_interpreter(tflite_runtime)})", tflite_runtime))
    if int8_flip:
        lines.append(row(f"int8, face and mirror averaged ({_interpreter(int8_flip)}; the agent's default)",
                         int8_flip, bold=True))
    return "\n".join(lines)


def ablation_table(ablation: dict) -> str:
    """The recipe ablation (scripts/ablate_recipe.py): one row per arm, scored on the whole val split."""
    setup = ablation.get("setup", {})
    lines = [f"| arm | val top-1 ({setup.get('subset', '?')} training faces, {setup.get('epochs', '?')} epochs) "
             "| macro F1 |", "| --- | --- | --- |"]
    best = max(row["val_accuracy"] for row in ablation["arms"].values())
    for name, row in ablation["arms"].items():
        top1 = _bold(f"{100 * row['val_accuracy']:.2f}%", row["val_accuracy"] == best)
        lines.append(f"| {name} | {top1} | {row['macro_f1']:.3f} |")
    return "\n".join(lines)


def confusion_block(keras: dict) -> str:
    widths = [max(len(label), 5) + 1 for label in LABELS]
    header = " " * 10 + "".join(f"{label:>{w}}" for label, w in zip(LABELS, widths))
    rows = [f"{label:<10}" + "".join(f"{count:>{w}}" for count, w in zip(row, widths))
            for label, row in zip(LABELS, keras["confusion"])]
    return "```\n" + "\n".join([header, *rows]) + "\n```"


def conversion_table(report: dict) -> str:
    keras, variants, checks = report["keras"], report["variants"], report["checks"]

    def row(name: str, v: dict, bold: bool = False) -> str:
        top1 = _bold(f"{100 * v['accuracy']:.2f}%", bold)
        speed = _bold(f"{v['faces_per_second_b1']:.0f}", bold)
        return (f"| {name} | {top1} | {100 * v['agreement']:.2f}% | {v['max_prob_diff']:.4f} | "
                f"{_size(v['size_bytes'])} | {speed} | {v['faces_per_second_b32']:.0f} |")

    names = {"float32": "float32", "float16": "float16", "dynamic-int8": "dynamic-range int8", "int8": "**int8**"}
    lines = ["| variant | val top-1 | agreement with Keras | largest prob. diff | size | faces/s b1 | faces/s b32 |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             f"| Keras (TensorFlow) | {100 * keras['accuracy']:.2f}% | - | - | {_size(keras['size_bytes'])} | "
             f"{keras['faces_per_second_b1']:.0f} | {keras['faces_per_second_b32']:.0f} |"]
    lines += [row(label, variants[key], bold=key == "int8") for key, label in names.items() if key in variants]
    lines += ["",
              f"- int8 accuracy drop: {checks['int8_drop_points']:.2f} points (target <= "
              f"{checks['max_drop_points']:.1f}).",
              f"- int8 size / float32 size: {checks['int8_size_ratio']:.3f} (target <= 1/3).",
              f"- int8 / float32 batch-1 speed: {checks['int8_speedup_b1']:.1f}x (target >= 2x)."]
    return "\n".join(lines)


def render(folder: Path, card: str) -> str:
    """``card`` with every figures block regenerated from the JSON files in ``folder``."""
    keras = _load(folder, "eval-keras-val.json")
    figures = {
        "accuracy": accuracy_table(keras, _load(folder, "eval-int8-val.json"),
                                   _load(folder, "eval-int8-val-tflite-runtime.json", required=False),
                                   _load(folder, "eval-int8-flip-val.json", required=False)),
        "confusion": confusion_block(keras),
        "conversion": conversion_table(_load(folder, "conversion-report.json")),
    }
    ablation = _load(folder, "ablation-val.json", required=False)
    if ablation:
        figures["ablation"] = ablation_table(ablation)
    for name, text in figures.items():
        pattern = re.compile(rf"(<!-- figures:{name} -->\n).*?(\n<!-- /figures:{name} -->)", re.S)
        if not pattern.search(card):
            sys.exit(f"card_figures: {folder / 'MODEL_CARD.md'} has no <!-- figures:{name} --> ... "
                     f"<!-- /figures:{name} --> block")
        card = pattern.sub(lambda m, text=text: m.group(1) + text + m.group(2), card)
    return card


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    folder = Path(args[0] if args else Path(__file__).resolve().parents[1] / "models")
    path = folder / "MODEL_CARD.md"
    current = path.read_text()
    card = render(folder, current)
    if check:
        if card != current:
            print(f"{path}: figures differ from the JSON files; run scripts/card_figures.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(card)
    print(f"wrote the figures of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
