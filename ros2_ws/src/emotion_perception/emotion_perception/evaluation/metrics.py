"""Classification metrics from a full confusion matrix (never averaged per batch).

WAR (weighted average recall) = accuracy over all samples; UAR (unweighted average recall) = mean
of per-class recall over the classes that have samples. A class without samples has recall NaN in
the per-class list and is left out of UAR, so the score is not dragged down by an empty class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(targets, predictions, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """counts[i, j] = samples of true class i predicted as class j."""
    t, p = _class_ids(targets, "target"), _class_ids(predictions, "prediction")
    if t.shape != p.shape:
        raise ValueError(f"{t.size} targets but {p.size} predictions")
    for name, a in (("target", t), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} class ids must be in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def _class_ids(values, name: str) -> np.ndarray:
    """1-D int64 class ids; fractional values are an error rather than silently truncated."""
    a = np.asarray(values).ravel()
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(a == np.round(a)):
            raise ValueError(f"{name} class ids must be integers")
    return a.astype(np.int64)


@dataclass(frozen=True)
class Scores:
    confusion: np.ndarray
    per_class_recall: np.ndarray  # NaN where a class has no samples
    uar: float
    war: float

    @property
    def samples(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self, class_names=CLASS_NAMES) -> dict:
        return {
            "uar": self.uar,
            "war": self.war,
            "samples": self.samples,
            "per_class_recall": {
                n: (None if np.isnan(r) else float(r)) for n, r in zip(class_names, self.per_class_recall)
            },
            "confusion_matrix": self.confusion.tolist(),
            "class_order": list(class_names),
        }


def scores_from_confusion(confusion: np.ndarray) -> Scores:
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or (cm < 0).any():
        raise ValueError(f"a confusion matrix must be square with non-negative counts, got shape {cm.shape}")
    support = cm.sum(axis=1)
    recall = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)  # never divides by 0
    total = cm.sum()
    war = float(np.trace(cm) / total) if total else float("nan")
    uar = float(np.nanmean(recall)) if np.any(support > 0) else float("nan")
    return Scores(cm, recall, uar, war)


def score(targets, predictions, num_classes: int = NUM_CLASSES) -> Scores:
    return scores_from_confusion(confusion_matrix(targets, predictions, num_classes))
