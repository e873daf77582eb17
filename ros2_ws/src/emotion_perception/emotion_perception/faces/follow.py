"""Follow tracked faces between whole-frame searches with a cheap re-detector.

A whole-frame search (BlazeFace, MTCNN's pyramid) is the costly part of a CPU frame. Between
searches the engine asks a re-detector (MTCNN's R-Net and O-Net, ``MTCNNDetector.redetect``) to
find each tracked face again near where the tracker predicts it. The re-detector boxes a face its
own way: on average that is mapped out by ``BOX_ON_REFERENCE``, but per face the two boxes still
differ by some percent of a side, and the emotion models are sensitive to that (on the dev set,
BlazeFace's own boxes scored WAR 0.92 and re-detected ones 0.89). So after each search the
follower re-detects every found face once and keeps, per track, the detector's box relative to
the re-detector's (the (w, h, dx, dy) form of ``BOX_ON_REFERENCE``); a face followed between
searches is then boxed as the detector boxed it, moved and scaled as the re-detector sees it move.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Box, Detection
from .base import from_reference, to_reference

SAME = (1.0, 1.0, 0.0, 0.0)


def _row(box: Box) -> np.ndarray:
    return np.array([[box.x, box.y, box.x + box.w, box.y + box.h, 0.0]])


def _box(row: np.ndarray) -> Box:
    x0, y0, x1, y1 = row[0, :4].tolist()
    return Box(x0, y0, x1 - x0, y1 - y0)


def relative_box(box: Box, reference: Box) -> tuple[float, float, float, float]:
    """``box`` relative to ``reference``: width and height ratios, centre offset in reference sides."""
    (bx, by), (rx, ry) = box.center, reference.center
    return box.w / reference.w, box.h / reference.h, (bx - rx) / reference.w, (by - ry) / reference.h


class FaceFollower:
    """Re-finds tracked faces with ``redetector`` (``redetect(rgb, boxes) -> [Detection | None]``),
    keeping each face boxed the way the whole-frame detector boxed it at the last search."""

    def __init__(self, redetector):
        self.redetector = redetector
        self._styles: dict[str, tuple[float, float, float, float]] = {}

    def learn(self, rgb: np.ndarray, found: Sequence[tuple[str, Box]]) -> bool:
        """After a search: how the re-detector boxes each (track id, detector box) of ``found``.
        False when it cannot re-find one of them (a face the detector sees at an angle MTCNN
        does not): following would lose that face, so the caller should search again."""
        again = self.redetector.redetect(rgb, [box for _, box in found]) if found else []
        self._styles = {
            track_id: relative_box(det.box, box)
            for (track_id, box), det in zip(found, again)
            if det is not None and box.w > 0 and box.h > 0
        }
        return len(self._styles) == len(found)

    def follow(self, rgb: np.ndarray, predicted: Sequence[tuple[str, Box]]) -> list[Detection | None]:
        """Each (track id, predicted box) found again, boxed in the detector's way; None where lost."""
        styles = [self._styles.get(track_id, SAME) for track_id, _ in predicted]
        asked = [_box(from_reference(_row(box), style)) for (_, box), style in zip(predicted, styles)]
        found = self.redetector.redetect(rgb, asked) if asked else []
        return [
            None if det is None else Detection(_box(to_reference(_row(det.box), style)), det.score)
            for det, style in zip(found, styles)
        ]
