"""Square face crops with context, the input the face encoders expect."""
from __future__ import annotations

import math

import numpy as np

from ..images import check_rgb
from ..types import Box


def crop_face(rgb: np.ndarray, box: Box, margin: float = 0.25) -> np.ndarray:
    """Square RGB crop centred on ``box`` with side ``max(w, h) * (1 + 2 * margin)``.

    A square keeps the face undistorted when the encoder resizes it; the margin keeps hair, chin
    and forehead, which carry expression. Where the square leaves the image it is zero-padded
    (rather than shifted), so the face stays centred. Never empty: at least 1x1.
    """
    check_rgb(rgb)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    values = (box.x, box.y, box.w, box.h)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box has a non-finite coordinate: {box}")
    side = max(1, int(round(max(box.w, box.h, 0.0) * (1 + 2 * margin))))
    cx, cy = box.center
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    height, width = rgb.shape[:2]
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out
