"""Evaluation arithmetic and its registry metrics, checked on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.evaluation import curve_metrics, evaluate_logits, evaluation_metrics

CLASSES = ("cat", "dog", "fox")


def test_confusion_and_scores():
    labels = np.array([0, 0, 1, 1, 2])
    logits = np.array([[5, 0, 0], [0, 5, 0], [0, 5, 0], [0, 5, 0], [0, 0, 5]], dtype=float)

    result = evaluate_logits("validation", logits, labels, CLASSES)

    assert result.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert result.accuracy == pytest.approx(0.8)
    assert result.precision == pytest.approx((1.0, 2 / 3, 1.0))
    assert result.recall == pytest.approx((0.5, 1.0, 1.0))
    assert result.f1[0] == pytest.approx(2 / 3)
    assert result.support == (2, 2, 1)


def test_loss_is_softmax_cross_entropy():
    logits = np.array([[0.0, 0.0, 0.0]])

    result = evaluate_logits("test", logits, np.array([1]), CLASSES)

    assert result.loss == pytest.approx(math.log(3))


def test_class_never_predicted_scores_zero():
    logits = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])

    result = evaluate_logits("validation", logits, np.array([0, 2]), CLASSES)

    assert result.precision[1] == 0.0
    assert result.recall[2] == 0.0
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.0) / 2)


def test_metrics_include_confusion_cells():
    logits = np.eye(3)
    result = evaluate_logits("validation", logits, np.array([0, 1, 1]), CLASSES)

    metrics = evaluation_metrics(result)

    by_key = {(m.name, m.class_name): m.value for m in metrics}
    assert by_key[("accuracy", None)] == pytest.approx(2 / 3)
    assert by_key[("confusion/dog", "fox")] == 1.0
    assert by_key[("confusion/dog", "dog")] == 1.0
    assert by_key[("recall", "dog")] == 0.5
    assert all(m.split == "validation" for m in metrics)
    assert len([m for m in metrics if m.name.startswith("confusion/")]) == 9


def test_curve_metrics_number_epochs_from_one():
    metrics = curve_metrics({"loss": [2.0, 1.0], "val_accuracy": [0.5, 0.75]})

    assert [(m.split, m.name, m.epoch, m.value) for m in metrics] == [
        ("train", "loss", 1, 2.0),
        ("train", "loss", 2, 1.0),
        ("validation", "accuracy", 1, 0.5),
        ("validation", "accuracy", 2, 0.75),
    ]
