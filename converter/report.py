"""The conversion report: a table on screen, ``report.json`` and ``report.md``."""

from __future__ import annotations

COLUMNS = (("variant", "variant", "{}"), ("accuracy", "val acc", "{:.4f}"), ("agreement", "agree", "{:.4f}"),
           ("max_prob_diff", "max |dp|", "{:.4f}"), ("size_bytes", "size KiB", "{}"),
           ("faces_per_second_b1", "faces/s b1", "{:.0f}"), ("faces_per_second_b32", "faces/s b32", "{:.0f}"))


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key == "size_bytes":
        return f"{value / 1024:.0f}"
    return fmt.format(value)


def table(report: dict) -> str:
    rows = [{"variant": "keras", **report["keras"]}] + [{"variant": k, **v} for k, v in report["variants"].items()]
    cells = [[title for _, title, _ in COLUMNS]] + [[_cell(r, k, f) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(report: dict) -> str:
    rows = [{"variant": "keras", **report["keras"]}] + [{"variant": k, **v} for k, v in report["variants"].items()]
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join(" --- " for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |" for r in rows]
    checks = report["checks"]
    lines = [f"# Conversion report: {report['source']['file']}", "",
             f"Source sha256 `{report['source']['sha256']}`; val: {report['val']['n']} faces from "
             f"`{report['val']['data']}`; calibration: {report['calibration']['n']} train faces, stratified by class. "
             f"Speed: one thread, `{report['interpreter']}`, on {report['machine']}.", "",
             head, rule, *body, "", "## Targets", "",
             f"- int8 accuracy drop vs Keras: {checks['int8_drop_points']:.2f} points "
             f"(allowed {checks['max_drop_points']:.2f}) -> {'pass' if checks['drop_ok'] else 'FAIL'}",
             f"- int8 size / float32 size: {checks['int8_size_ratio']:.3f} (target <= 0.333)",
             f"- int8 / float32 batch-1 faces/s: {checks['int8_speedup_b1']:.2f}x (target >= 2x)", ""]
    if report.get("command"):
        lines += [f"Made by: `{report['command']}`", ""]
    return "\n".join(lines)
