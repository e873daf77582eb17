"""What every face detector shares: the ``FaceDetector`` base class and the box helpers.

Detectors (faces/detectors.py, mtcnn.py, dlib_detectors.py) and the follower (follow.py) import
from here; the factory in faces/detectors.py imports them. Nothing here imports a detector, so
the package has no import circle (tests/test_import_graph.py).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..images import check_rgb
from ..types import Box, Detection


def check_device(device: str) -> str:
    device = str(device)
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda[:N] or mps, got {device!r}")
    return device


def to_reference(raw: np.ndarray, box_on_reference: tuple[float, float, float, float]) -> np.ndarray:
    """(N, 5) x0, y0, x1, y1, score boxes of a detector -> the reference face boxes they stand for."""
    w_ratio, h_ratio, dx, dy = box_on_reference
    out = raw.copy()
    width, height = (raw[:, 2] - raw[:, 0]) / w_ratio, (raw[:, 3] - raw[:, 1]) / h_ratio
    cx = (raw[:, 0] + raw[:, 2]) / 2 - dx * width
    cy = (raw[:, 1] + raw[:, 3]) / 2 - dy * height
    out[:, 0], out[:, 2] = cx - width / 2, cx + width / 2
    out[:, 1], out[:, 3] = cy - height / 2, cy + height / 2
    return out


def from_reference(boxes: np.ndarray, box_on_reference: tuple[float, float, float, float]) -> np.ndarray:
    """The inverse of ``to_reference``: reference face boxes -> where this detector would box them."""
    w_ratio, h_ratio, dx, dy = box_on_reference
    out = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * width
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + dy * height
    out[:, 0], out[:, 2] = cx - width * w_ratio / 2, cx + width * w_ratio / 2
    out[:, 1], out[:, 3] = cy - height * h_ratio / 2, cy + height * h_ratio / 2
    return out


class FaceDetector(ABC):
    """Finds faces in an RGB image.

    ``detect`` returns boxes in pixels of the input image, clipped to it, with score in [0, 1],
    at least ``min_score`` and sides of at least ``min_size`` pixels, sorted by score (best first).

    Every detector reports the same face box: each detector puts its box somewhere else on a face
    (BlazeFace lower and tighter, MTCNN narrower and taller), so ``BOX_ON_REFERENCE`` says where,
    relative to the hand-labelled face boxes of ``../shared/data/eval/images`` (24 faces; the
    OpenCV cascade boxes them almost exactly so): box width and height as fractions of the
    reference side, box centre offset (x, y) in reference sides, means over those faces.
    ``detect`` maps each raw box back onto the reference, so a profile's crop setting (margin,
    shift) holds whichever detector found the face.
    """

    name: str = ""
    BOX_ON_REFERENCE: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)

    def __init__(self, min_score: float = 0.5, min_size: float = 20):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {min_size}")
        self.min_score = float(min_score)
        self.min_size = float(min_size)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        check_rgb(rgb)
        height, width = rgb.shape[:2]
        raw = np.asarray(self._detect_xyxy(np.ascontiguousarray(rgb)), dtype=np.float64).reshape(-1, 5)
        raw = to_reference(raw[np.isfinite(raw).all(axis=1)], self.BOX_ON_REFERENCE)
        detections = [d for d in (self._accepted(row, width, height) for row in raw.tolist()) if d is not None]
        detections.sort(key=lambda d: d.score, reverse=True)
        return detections

    def _accepted(self, row, width: int, height: int) -> Detection | None:
        """One x0, y0, x1, y1, score reference row as a Detection clipped to the image, or None
        when its score or size is below this detector's minimum."""
        x0, y0, x1, y1, score = row
        box = Box(x0, y0, x1 - x0, y1 - y0).clipped(width, height)
        score = float(min(max(score, 0.0), 1.0))
        if score >= self.min_score and min(box.w, box.h) >= max(self.min_size, 1e-6):
            return Detection(box, score)
        return None

    @abstractmethod
    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        """Raw detections as an (N, 5) array of x0, y0, x1, y1, score in input pixels."""
