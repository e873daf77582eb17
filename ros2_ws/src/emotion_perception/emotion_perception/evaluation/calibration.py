"""Temperature calibration of the class probabilities, fitted on labelled faces.

A classifier's top probability is often not how often it is right (FER2013 networks are
over-confident), so a threshold such as the LLM context's ``min_confidence`` would not mean what
it says. One temperature ``T`` per profile divides the class logits before the softmax
(``EngineConfig.temperature``, from the profile's ``calibration.temperature``): ``T > 1`` softens,
``T < 1`` sharpens; the argmax never changes. On probabilities that is ``p ** (1 / T)``,
renormalised, which is how it is fitted here from a run's published probabilities: ``T``
minimises the negative log-likelihood of the labelled classes (Guo et al. 2017, "On Calibration
of Modern Neural Networks"). The expected calibration error (ECE) is the top-label one: over 15
equal-width confidence bins, the sample-weighted mean of |accuracy - mean confidence|.
"""
from __future__ import annotations

import numpy as np

ECE_BINS = 15


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as if the logits had been divided by ``temperature``."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=-1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error over equal-width confidence bins."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(labels))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the NLL (a grid in log T, then a finer one)."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, int)
    if len(labels) == 0:
        raise ValueError("no labelled faces with an estimate to calibrate on")
    grid = np.linspace(np.log(0.05), np.log(20.0), 121)
    for _ in range(4):  # each round zooms into the two grid steps around the best point
        losses = [nll(apply_temperature(probs, float(np.exp(g))), labels) for g in grid]
        best = int(np.argmin(losses))
        grid = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], 41)
    return float(np.exp(grid[20]))


def write_profile_temperature(path, temperature: float, note: str) -> None:
    """Set ``calibration.temperature`` in a profile YAML file, keeping the rest of it as written."""
    from pathlib import Path

    path = Path(path)
    lines = path.read_text().splitlines()
    kept, skipping = [], False
    for line in lines:
        if line.startswith("calibration:"):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        skipping = False
        kept.append(line)
    kept += [f"calibration:  # {note}", f"  temperature: {temperature:.3f}"]
    path.write_text("\n".join(kept) + "\n")


def labelled_probabilities(items) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, 7], labels [N]) of every labelled face an estimate was matched to, from
    eval-set items (``ItemScore.context_frames``)."""
    probs, labels = [], []
    for item in items:
        for frame in item.context_frames:
            by_subject = {str(e.subject_id): e for e in frame.estimates}
            for person, label in frame.labels.items():
                est = by_subject.get(frame.subjects.get(person, ""))
                if est is not None:
                    probs.append(np.asarray(est.probabilities, np.float64))
                    labels.append(label)
    return np.array(probs).reshape(-1, 7), np.array(labels, int)


def calibration_report(probs: np.ndarray, labels: np.ndarray, measured_at: float = 1.0) -> dict:
    """Fit a temperature on probabilities made at temperature ``measured_at``; ECE/NLL before and after."""
    fitted = fit_temperature(probs, labels)
    after = apply_temperature(probs, fitted)
    return {"temperature": fitted * measured_at, "relative_to_run": fitted, "samples": int(len(labels)),
            "ece_before": ece(probs, labels), "ece_after": ece(after, labels),
            "nll_before": nll(probs, labels), "nll_after": nll(after, labels),
            "accuracy": float(np.mean(probs.argmax(1) == labels)) if len(labels) else None}
