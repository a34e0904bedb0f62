"""PNG plots of a run: learning curves, the confusion matrix and a sweep's validation curves.

Matplotlib is imported inside each function with the Agg backend, so no display is needed and
importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def plot_curves(
    history: dict[str, list[float]], path: Path, *, fine_tune_first_epoch: int | None = None
) -> Path:
    """Plot loss and accuracy per epoch, train and validation, into `path`.

    Args:
        fine_tune_first_epoch: First epoch of the fine-tune stage, marked by a vertical line.
            Defaults to None (one stage).
    """
    pyplot = _pyplot()
    figure, (loss_axes, accuracy_axes) = pyplot.subplots(1, 2, figsize=(11, 4))
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = history.get(key, [])
            axes.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        if fine_tune_first_epoch:
            axes.axvline(fine_tune_first_epoch - 0.5, color="grey", linestyle="--", label="fine-tune")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def plot_confusion(
    confusion: np.ndarray, class_names: tuple[str, ...], path: Path, *, title: str
) -> Path:
    """Plot a confusion matrix (rows: true class, columns: predicted class) with counts."""
    pyplot = _pyplot()
    size = max(4.0, 0.6 * len(class_names) + 2)
    figure, axes = pyplot.subplots(figsize=(size, size))
    axes.imshow(confusion, cmap="Blues")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    threshold = confusion.max() / 2 if confusion.size else 0
    for row in range(confusion.shape[0]):
        for column in range(confusion.shape[1]):
            count = int(confusion[row, column])
            color = "white" if count > threshold else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def plot_sweep(curves: dict[str, list[float]], path: Path, *, best: str | None = None) -> Path:
    """Plot validation accuracy per epoch for every trial label in `curves`; `best` is bold."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(10, 6))
    for label, values in curves.items():
        is_best = label == best
        axes.plot(
            range(1, len(values) + 1),
            values,
            label=f"{label} (best)" if is_best else label,
            linewidth=2.5 if is_best else 1.0,
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2 if len(curves) > 12 else 1, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
