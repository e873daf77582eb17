"""Face crops with context, cut the way each model's training faces were cut.

The geometry belongs to the model profile (``crop:`` in its YAML): FER2013's faces are tight
48 px crops, CLIP heads saw looser crops with hair and chin. ``margin`` is the context added on
each side as a fraction of the box side, ``square`` keeps the crop square (an encoder resizes it
without distortion), ``shift`` moves the crop centre down by that fraction of the box height
(detector boxes sit high or low on the face depending on the detector). ``angle`` turns the crop
about its centre (faces/align.py: eyes level for a tilted head).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..images import check_rgb
from ..types import Box


def crop_face(rgb: np.ndarray, box: Box, margin: float = 0.25, square: bool = True, shift: float = 0.0,
              angle: float = 0.0) -> np.ndarray:
    """RGB crop centred on ``box`` (moved down by ``shift * h``), ``(1 + 2 * margin)`` times its
    size; with ``square`` both sides are ``max(w, h) * (1 + 2 * margin)``. ``angle`` (degrees,
    counter-clockwise as seen): the image is turned by it about the crop centre first (bilinear).

    Where the crop leaves the image it is zero-padded (rather than shifted), so the face stays
    centred. Never empty: at least 1x1.
    """
    check_rgb(rgb)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    values = (box.x, box.y, box.w, box.h, shift, angle)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box, shift or angle has a non-finite value: {box}, shift {shift}, angle {angle}")
    w, h = max(box.w, 0.0), max(box.h, 0.0)
    if square:
        w = h = max(w, h)
    crop_w, crop_h = (max(1, int(round(v * (1 + 2 * margin)))) for v in (w, h))
    cx, cy = box.center
    cy += shift * max(box.h, 0.0)
    if angle:
        turn = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        turn[:, 2] += (crop_w / 2 - cx, crop_h / 2 - cy)  # the crop centre lands on the output's centre
        return cv2.warpAffine(rgb, turn, (crop_w, crop_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    x0, y0 = int(round(cx - crop_w / 2)), int(round(cy - crop_h / 2))
    height, width = rgb.shape[:2]
    out = np.zeros((crop_h, crop_w, 3), dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + crop_w, width), min(y0 + crop_h, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out
