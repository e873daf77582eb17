"""Canonical emotion classes and their attributes: one order everywhere (DFEW's).

Messages, checkpoints, metrics and every dataset reader use these ids. The class and polarity ids
equal the constants in ``emotion_msgs/EmotionState`` (a test checks that).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmotionClass:
    id: int
    name: str
    polarity: int  # index into POLARITIES
    valence: float  # [-1, 1], circumplex model of affect
    arousal: float  # [-1, 1]


POLARITIES: tuple[str, ...] = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL_POLARITY, POSITIVE = 0, 1, 2

# Valence/arousal: positions on Russell's circumplex, rounded; used to turn a class distribution
# into a continuous estimate (probability-weighted mean). Polarity is this project's mapping (the
# OUS paper trains a scene polarity but publishes no emotion -> polarity table): the sign of each
# class's valence, with surprise (valence near zero, either sign in practice) counted neutral:
# happy -> positive; sad, angry, disgust, fear -> negative; neutral, surprise -> neutral.
CLASSES: tuple[EmotionClass, ...] = (
    EmotionClass(0, "happy", POSITIVE, 0.8, 0.5),
    EmotionClass(1, "sad", NEGATIVE, -0.7, -0.4),
    EmotionClass(2, "neutral", NEUTRAL_POLARITY, 0.0, 0.0),
    EmotionClass(3, "angry", NEGATIVE, -0.6, 0.7),
    EmotionClass(4, "surprise", NEUTRAL_POLARITY, 0.2, 0.8),
    EmotionClass(5, "disgust", NEGATIVE, -0.7, 0.3),
    EmotionClass(6, "fear", NEGATIVE, -0.6, 0.8),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
NUM_CLASSES = len(CLASSES)

_VALENCE = np.array([c.valence for c in CLASSES], dtype=np.float32)
_AROUSAL = np.array([c.arousal for c in CLASSES], dtype=np.float32)
POLARITY_OF_CLASS = np.array([c.polarity for c in CLASSES], dtype=np.int64)

# Other spellings found in datasets and model outputs.
_ALIASES = {
    "happiness": "happy",
    "sadness": "sad",
    "neutrality": "neutral",
    "anger": "angry",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
}


def class_id(name: str) -> int:
    """Canonical id of a class name (case-insensitive, common aliases accepted)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return CLASS_NAMES.index(key)
    except ValueError:
        raise ValueError(f"unknown emotion class {name!r}; expected one of {', '.join(CLASS_NAMES)}") from None


def class_name(cid: int) -> str:
    if not 0 <= int(cid) < NUM_CLASSES:
        raise ValueError(f"class id {cid} out of range 0..{NUM_CLASSES - 1}")
    return CLASS_NAMES[int(cid)]


def polarity_target(cid: int) -> int:
    """Scene polarity implied by an emotion label (used when a dataset gives no polarity)."""
    return int(POLARITY_OF_CLASS[cid])


def valence_arousal(probabilities: np.ndarray) -> tuple[float, float]:
    """Probability-weighted valence and arousal of a class distribution (canonical order)."""
    p = np.asarray(probabilities, dtype=np.float32)
    if p.shape != (NUM_CLASSES,):
        raise ValueError(f"expected {NUM_CLASSES} probabilities, got shape {p.shape}")
    return float(p @ _VALENCE), float(p @ _AROUSAL)
