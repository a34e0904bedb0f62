"""Evaluate logits against labels and turn the results into registry metrics.

Pure numpy, so tests check the arithmetic without Keras. The confusion matrix is stored as
metrics named `confusion/<true class>`, each with the predicted class as `class_name` and the
image count as value. Per-class metrics are `precision`, `recall`, `f1` and `support`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from registry.types import MetricValue


@dataclass(frozen=True)
class Evaluation:
    """Scores of one split. `confusion[i, j]` counts images of class i predicted as class j."""

    split: str
    class_names: tuple[str, ...]
    accuracy: float
    loss: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    support: tuple[int, ...]
    confusion: np.ndarray

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def macro_f1(self) -> float:
        present = [f for f, n in zip(self.f1, self.support) if n]
        return float(np.mean(present)) if present else 0.0


def evaluate_logits(
    split: str, logits: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]
) -> Evaluation:
    """Score `logits` (n, classes) against integer `labels` (n,).

    The loss is the mean categorical cross-entropy of the softmax, without label smoothing.
    Precision of a class never predicted, and recall of a class with no images, are 0.
    """
    class_count = len(class_names)
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=np.int64)

    confusion = np.zeros((class_count, class_count), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)

    true_positive = np.diag(confusion).astype(np.float64)
    predicted_count = confusion.sum(axis=0)
    actual_count = confusion.sum(axis=1)
    precision = _safe_divide(true_positive, predicted_count)
    recall = _safe_divide(true_positive, actual_count)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    return Evaluation(
        split=split,
        class_names=tuple(class_names),
        accuracy=float(true_positive.sum() / len(labels)) if len(labels) else 0.0,
        loss=_cross_entropy(logits, labels),
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(int(v) for v in actual_count),
        confusion=confusion,
    )


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    result = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return 0.0
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def evaluation_metrics(evaluation: Evaluation) -> list[MetricValue]:
    """Turn one split's evaluation into summary, per-class and confusion metrics."""
    split = evaluation.split
    metrics = [
        MetricValue(split, "accuracy", evaluation.accuracy),
        MetricValue(split, "loss", evaluation.loss),
        MetricValue(split, "macro_f1", evaluation.macro_f1),
        MetricValue(split, "count", float(evaluation.count)),
    ]
    for index, class_name in enumerate(evaluation.class_names):
        metrics.extend(
            [
                MetricValue(split, "precision", evaluation.precision[index], class_name=class_name),
                MetricValue(split, "recall", evaluation.recall[index], class_name=class_name),
                MetricValue(split, "f1", evaluation.f1[index], class_name=class_name),
                MetricValue(split, "support", float(evaluation.support[index]), class_name=class_name),
            ]
        )
        for predicted_index, predicted_name in enumerate(evaluation.class_names):
            metrics.append(
                MetricValue(
                    split,
                    f"confusion/{class_name}",
                    float(evaluation.confusion[index, predicted_index]),
                    class_name=predicted_name,
                )
            )
    return metrics


def curve_metrics(history: dict[str, list[float]]) -> list[MetricValue]:
    """Turn a Keras-style history into per-epoch metrics, epochs numbered from 1.

    `loss`/`accuracy` go to split `train` and `val_loss`/`val_accuracy` to split `validation`.
    """
    metrics = []
    for key, values in history.items():
        if key.startswith("val_"):
            split, name = "validation", key[len("val_"):]
        else:
            split, name = "train", key
        for epoch, value in enumerate(values, start=1):
            metrics.append(MetricValue(split, name, float(value), epoch=epoch))
    return metrics
