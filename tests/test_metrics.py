"""Confusion matrix, UAR and WAR against hand-computed values."""
from __future__ import annotations

import json
import warnings
import math

import numpy as np
import pytest

from emotion_perception.evaluation.metrics import confusion_matrix, score, scores_from_confusion
from emotion_perception.labels import CLASS_NAMES


def test_hand_computed_with_an_empty_class():
    # Class 3 has no samples but is predicted once (a false positive).
    targets = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    preds = [0, 0, 1, 1, 3, 2, 2, 2, 0]
    cm = confusion_matrix(targets, preds, num_classes=4)
    assert cm.tolist() == [
        [2, 1, 0, 0],
        [0, 1, 0, 1],
        [1, 0, 3, 0],
        [0, 0, 0, 0],
    ]
    s = scores_from_confusion(cm)
    assert s.per_class_recall[:3] == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert math.isnan(s.per_class_recall[3])
    assert s.uar == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)  # the empty class is left out
    assert s.war == pytest.approx(6 / 9)
    assert s.samples == 9


def test_uar_differs_from_war_on_imbalanced_data():
    targets = [0] * 90 + [1] * 10
    s = score(targets, [0] * 100, num_classes=2)
    assert s.war == pytest.approx(0.9) and s.uar == pytest.approx(0.5)


def test_seven_classes_report_dict():
    targets = [0, 1, 2, 3, 4, 6, 6]  # no disgust (5)
    preds = [0, 1, 2, 3, 6, 6, 5]
    s = score(targets, preds)
    d = s.to_dict()
    assert d["class_order"] == list(CLASS_NAMES)
    assert d["per_class_recall"]["disgust"] is None
    assert d["per_class_recall"]["surprise"] == 0.0 and d["per_class_recall"]["fear"] == 0.5
    assert d["uar"] == pytest.approx((1 + 1 + 1 + 1 + 0 + 0.5) / 6)
    assert d["war"] == pytest.approx(5 / 7)
    assert np.array(d["confusion_matrix"])[6].tolist() == [0, 0, 0, 0, 0, 1, 1]
    json.dumps(d, allow_nan=False)  # plain JSON


def test_whole_set_not_batch_average():
    # Two "batches": averaging per-batch UAR would give (1.0 + 0.5) / 2 = 0.75.
    t1, p1 = [0, 1], [0, 1]
    t2, p2 = [0, 0, 0, 1], [0, 0, 0, 0]
    whole = scores_from_confusion(confusion_matrix(t1, p1, 2) + confusion_matrix(t2, p2, 2))
    assert whole.uar == pytest.approx((4 / 4 + 1 / 2) / 2)
    assert whole.war == pytest.approx(5 / 6)


def test_empty_and_perfect():
    s = score([], [])
    assert s.samples == 0 and math.isnan(s.uar) and math.isnan(s.war)
    s = score(range(7), range(7))
    assert s.uar == s.war == 1.0


@pytest.mark.parametrize(
    "targets, preds, message",
    [
        ([0, 1], [0], "2 targets but 1 predictions"),
        ([0, 7], [0, 1], "target class ids must be in 0..6"),
        ([0, 1], [-1, 1], "prediction class ids must be in 0..6"),
        ([0, 1.5], [0, 1], "target class ids must be integers"),
    ],
)
def test_bad_input_is_one_clear_error(targets, preds, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(targets, preds)


@pytest.mark.parametrize("cm", [np.zeros((2, 3)), np.array([[1, -1], [0, 2]])])
def test_malformed_confusion_matrix_rejected(cm):
    with pytest.raises(ValueError, match="confusion matrix"):
        scores_from_confusion(cm)


def test_empty_scores_are_nan_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" / "mean of empty slice" noise in a report
        s = scores_from_confusion(np.zeros((7, 7), np.int64))
    assert s.samples == 0 and math.isnan(s.uar) and math.isnan(s.war) and np.isnan(s.per_class_recall).all()
    assert s.to_dict()["samples"] == 0 and score([1, 2], [1, 1]).to_dict()["samples"] == 2


def test_whole_number_floats_are_class_ids_and_the_class_count_is_honoured():
    s = score(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 1.0]), num_classes=3)
    assert s.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert s.confusion.dtype == np.int64
    assert score(np.float32([3, 4]), np.float32([3, 3])).confusion[3].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert scores_from_confusion([[2.0, 0.0], [1.0, 1.0]]).confusion.dtype == np.int64
    with pytest.raises(ValueError, match="^prediction class ids must be integers$"):
        confusion_matrix([0, 1], [0, 0.5])
    with pytest.raises(ValueError, match="^target class ids must be integers$"):
        confusion_matrix(["a"], [0])
