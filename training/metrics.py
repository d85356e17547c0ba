"""Classification figures from true and predicted labels: accuracy, per-class recall/precision/F1,
macro F1 and the confusion matrix (rows true, columns predicted, canonical order)."""

from __future__ import annotations

import numpy as np

from emo7ion.core import emotions


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = emotions.NUM_CLASSES) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def summarise(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Every figure ``emo7ion evaluate`` prints, as plain Python values for JSON."""
    matrix = confusion_matrix(y_true, y_pred)
    true_per_class = matrix.sum(axis=1)
    predicted_per_class = matrix.sum(axis=0)
    diagonal = np.diag(matrix).astype(float)
    recall = np.divide(diagonal, true_per_class, out=np.zeros_like(diagonal), where=true_per_class > 0)
    precision = np.divide(diagonal, predicted_per_class, out=np.zeros_like(diagonal), where=predicted_per_class > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(diagonal), where=denominator > 0)
    total = int(matrix.sum())
    labels = emotions.LABELS

    def by_label(values):
        return {label: round(float(v), 4) for label, v in zip(labels, values)}

    return {
        "n": total,
        "accuracy": round(float(diagonal.sum() / total), 4) if total else 0.0,
        "per_class": by_label(recall),  # the share of each true class read correctly
        "recall": by_label(recall),
        "precision": by_label(precision),
        "f1": by_label(f1),
        "macro_f1": round(float(f1[true_per_class > 0].mean()), 4) if total else 0.0,
        "support": {label: int(v) for label, v in zip(labels, true_per_class)},
        "confusion": matrix.tolist(),
    }


def format_report(summary: dict) -> str:
    """The figures as an aligned text table for a terminal."""
    labels = emotions.LABELS
    lines = [f"faces {summary['n']}   accuracy {summary['accuracy']:.4f}   macro F1 {summary['macro_f1']:.4f}", "",
             f"{'class':<10}{'n':>6}{'acc/recall':>12}{'precision':>11}{'f1':>8}"]
    for label in labels:
        lines.append(f"{label:<10}{summary['support'][label]:>6}{summary['recall'][label]:>12.4f}"
                     f"{summary['precision'][label]:>11.4f}{summary['f1'][label]:>8.4f}")
    lines += ["", "confusion (rows true, columns predicted)", " " * 10 + "".join(f"{label[:7]:>8}" for label in labels)]
    for label, row in zip(labels, summary["confusion"]):
        lines.append(f"{label:<10}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


def plot_confusion(summary: dict, path: str, title: str = "") -> None:
    """The confusion matrix as a row-normalised heatmap PNG with counts in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(summary["confusion"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(emotions.LABELS)), emotions.LABELS, rotation=45, ha="right")
    axis.set_yticks(range(len(emotions.LABELS)), emotions.LABELS)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            axis.text(j, i, f"{int(matrix[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                      color="white" if share[i, j] > 0.5 else "black")
    axis.set_title(title or f"accuracy {summary['accuracy']:.2%} on {summary['n']} faces")
    fig.colorbar(image, ax=axis, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
