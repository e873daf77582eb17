"""Where the eval-set's errors are: accuracy per face-height bin and per class, with counts.

Small faces (people a few metres from a 480x270 camera are 60-70 px tall) and the negative
classes are where a FER2013-class model fails; one overall WAR over a set that is mostly large
neutral faces hides both. Each scored sample is counted in the bin of its face height:

- the labelled box's height where the label has a box (photos);
- else the height of the box of the estimate it was matched to;
- else (a missed face in a video) the height of the same person's matched box in the nearest
  scored frame of that video, so a miss still counts as wrong in the bin it belongs to;
- else ``unknown`` (the person was never found).

Heights are in pixels of the frame as the detector's box reports them (every detector's box is
mapped onto one reference shape, so bins mean the same across detectors).
"""
from __future__ import annotations

import numpy as np

from .plots import format_value

# upper bounds (exclusive) of the bins; the last bin is open
SIZE_EDGES = (64, 96, 160)
SIZE_BINS = ("< 64 px", "64-96 px", "96-160 px", ">= 160 px", "unknown")
UNKNOWN = len(SIZE_BINS) - 1


def size_bin(height: float | None) -> int:
    """Index into ``SIZE_BINS`` of a face ``height`` in pixels (None: unknown)."""
    if height is None or not np.isfinite(height):
        return UNKNOWN
    return int(np.searchsorted(SIZE_EDGES, height, side="right"))


def fill_missing_heights(samples: list[tuple[str, int, float | None]]) -> list[float | None]:
    """Heights for ``(person, frame, height or None)`` samples of one video: a None takes the
    same person's height in the nearest frame that has one (the earlier frame on a tie)."""
    known: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for person in {p for p, _, _ in samples}:
        pairs = sorted((f, h) for p, f, h in samples if p == person and h is not None)
        if pairs:
            frames, heights = zip(*pairs)
            known[person] = (np.asarray(frames), np.asarray(heights, dtype=float))
    out = []
    for person, frame, height in samples:
        if height is None and person in known:
            frames, heights = known[person]
            height = float(heights[np.argmin(np.abs(frames - frame))])  # argmin: first (earlier) on ties
        out.append(height)
    return out


def empty_size_confusion(num_classes: int) -> np.ndarray:
    """counts[bin, true class, predicted class] (predicted includes the "no face" column)."""
    return np.zeros((len(SIZE_BINS), num_classes, num_classes), dtype=np.int64)


def size_rows(size_confusion: np.ndarray, class_names, missed: int) -> list[dict]:
    """Per bin with samples: samples, correct, accuracy, faces found, and each class's
    (correct, samples) in that bin."""
    rows = []
    for name, cm in zip(SIZE_BINS, size_confusion):
        total = int(cm.sum())
        if not total:
            continue
        support = cm.sum(axis=1)
        rows.append({
            "bin": name,
            "samples": total,
            "correct": int(np.trace(cm)),
            "accuracy": float(np.trace(cm) / total),
            "faces_found": total - int(cm[:, missed].sum()),
            "per_class": {n: [int(cm[i, i]), int(support[i])] for i, n in enumerate(class_names) if support[i]},
        })
    return rows


def class_rows(confusion: np.ndarray, class_names) -> dict[str, dict]:
    """Per class with samples: samples, correct, recall, and what it was mistaken for (counts)."""
    out = {}
    for i, name in enumerate(class_names):
        support = int(confusion[i].sum())
        if not support:
            continue
        wrong = {class_names[j]: int(c) for j, c in enumerate(confusion[i]) if j != i and c}
        out[name] = {"samples": support, "correct": int(confusion[i, i]), "recall": float(confusion[i, i] / support),
                     "mistaken_for": dict(sorted(wrong.items(), key=lambda kv: -kv[1]))}
    return out


def size_table(by_face_height: dict[str, list[dict]]) -> list[tuple]:
    """Report rows (face height, labels, accuracy (correct of samples), faces found, per class)."""
    rows = []
    for label_set, bins in by_face_height.items():
        for row in bins:
            classes = ", ".join(f"{n} {c}/{t}" for n, (c, t) in row["per_class"].items())
            rows.append((row["bin"], label_set, f"{format_value(row['accuracy'], True)} ({row['correct']} of {row['samples']})",
                         f"{row['faces_found']} of {row['samples']}", classes))
    return rows


def class_table(by_class: dict[str, dict[str, dict]]) -> list[tuple]:
    """Report rows (class, labels, recall (correct of samples), most frequent mistakes)."""
    rows = []
    for label_set, classes in by_class.items():
        for name, row in classes.items():
            mistakes = ", ".join(f"{n} {c}" for n, c in list(row["mistaken_for"].items())[:3]) or "-"
            rows.append((name, label_set, f"{format_value(row['recall'], True)} ({row['correct']} of {row['samples']})",
                         mistakes))
    return rows
