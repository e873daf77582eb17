"""Annotated frames: face boxes, emotion labels and scene polarity drawn on an RGB image.

Used by the perception node's debug image and by the recording tools' annotated videos.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .images import check_rgb
from .types import EmotionEstimate

# RGB colour per class (canonical order: happy, sad, neutral, angry, surprise, disgust, fear).
CLASS_COLOURS = (
    (60, 200, 60), (70, 110, 230), (200, 200, 200), (230, 50, 50),
    (240, 200, 40), (150, 90, 200), (240, 130, 30),
)
POLARITY_COLOURS = ((230, 60, 60), (200, 200, 200), (60, 200, 60))  # negative, neutral, positive
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(img: np.ndarray, text: str, x: int, y: int, colour, scale: float) -> None:
    """Text on a filled box (readable on any background), kept inside the image."""
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    h, w = img.shape[:2]
    x = int(min(max(x, 0), max(w - tw - 2, 0)))
    y = int(min(max(y, th + base + 2), h - 1))
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 2, y), colour, -1)
    cv2.putText(img, text, (x + 1, y - base), _FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)


def draw_estimates(rgb: np.ndarray, estimates: Sequence[EmotionEstimate]) -> np.ndarray:
    """A copy of ``rgb`` with each face's box, class, confidence and id, and the scene polarity."""
    check_rgb(rgb)
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 900)
    for est in estimates:
        b = est.box.clipped(w, h)
        x0, y0, x1, y1 = (int(round(v)) for v in (b.x, b.y, b.x + b.w, b.y + b.h))
        colour = CLASS_COLOURS[est.class_id]
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, max(1, int(round(scale * 3))))
        who = f"#{est.face_id}" + (f" {est.person_id}" if est.person_id else "")
        _label(out, f"{est.class_name} {est.confidence:.2f} {who}", x0, y0 - 2, colour, scale)
    scene = next((e for e in estimates if e.polarity_probabilities is not None), None)
    if scene is not None:
        p = scene.polarity
        _label(out, f"scene: {scene.polarity_name} {float(scene.polarity_probabilities[p]):.2f}",
               4, h - 4, POLARITY_COLOURS[p], scale)
    return out
