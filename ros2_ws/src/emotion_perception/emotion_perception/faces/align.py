"""Roll alignment: how far a head is tilted, so its crop can be turned until the eyes are level.

FER2013's faces were registered upright; a FER2013-class model reads a head tilted by 20-30
degrees (someone leaning on a wall, a camera mounted askew) as another expression (on the dev set
a tilted neutral face at 60 px read "sad" in 43 of 56 frames; docs/accuracy.md). The eyes come from
the 5-point landmark head of MTCNN's O-Net, run on the face box: its weights are in the
facenet-pytorch wheel the lite profile already uses to follow faces (~1.5-1.7 ms a face on one CPU
thread of the shared dev VM: benchmarks/README.md).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..images import check_rgb
from ..types import Box
from .base import check_device, from_reference
from .mtcnn import MTCNNDetector, ONet, crops, load_stage, normalise, squared, weight_paths

ONET_SIZE = 48


class RollEstimator:
    """Eye positions and head roll of faces given by their (reference) boxes."""

    def __init__(self, device: str = "cpu", weights_dir: str | Path | None = None):
        self.device = check_device(device)
        self.onet = load_stage(ONet(), weight_paths(weights_dir)["onet"]).to(self.device).eval()

    @torch.inference_mode()
    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """(N, 5, 2) image points (x, y) per box: eye, eye, nose, mouth corner, mouth corner
        (pairs left to right in the image). O-Net sees each box as MTCNN would have boxed it."""
        check_rgb(rgb)
        if not boxes:
            return np.zeros((0, 5, 2))
        reference = np.array([[b.x, b.y, b.x + b.w, b.y + b.h, 0.0] for b in boxes], dtype=np.float64)
        onet_boxes = squared(from_reference(reference, MTCNNDetector.BOX_ON_REFERENCE))
        points = self.onet.landmarks(normalise(crops(rgb, onet_boxes, ONET_SIZE)).to(self.device)).cpu().numpy()
        origin = onet_boxes[:, None, :2]
        size = (onet_boxes[:, 2:4] - onet_boxes[:, :2])[:, None, :]
        return origin + points * size

    def roll_degrees(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Per box, the angle (degrees) of the line from the image-left eye to the other eye,
        positive when the right-hand eye sits lower: turning the crop by it levels the eyes
        (``crop_face(..., angle=roll)``)."""
        eyes = self.landmarks(rgb, boxes)[:, :2]
        dx, dy = (eyes[:, 1] - eyes[:, 0]).T
        return np.degrees(np.arctan2(dy, dx))


class TrackRolls:
    """Each face track's roll, measured again at most every ``refresh_s`` of camera time.

    A head's roll changes slowly next to a camera's frame rate, and the O-Net pass is most of an
    aligned crop's cost (on one busy CPU core it made a followed frame's crop stage ~10x dearer):
    the due tracks of a frame are measured in one batch, the others keep their last roll."""

    def __init__(self, estimator: RollEstimator, refresh_s: float):
        if not refresh_s >= 0:
            raise ValueError(f"refresh_s must be >= 0, got {refresh_s}")
        self.estimator, self.refresh_s = estimator, float(refresh_s)
        self._rolls: dict[tuple, tuple[float, float]] = {}  # track key -> (roll degrees, camera s)

    def rolls(self, rgb: np.ndarray, keys: Sequence[tuple], boxes: Sequence[Box], now: float) -> list[float]:
        """Per track (``keys``, one per box) its roll at camera time ``now``."""
        due = [j for j, key in enumerate(keys)
               if key not in self._rolls or not 0 <= now - self._rolls[key][1] < self.refresh_s]
        if due:
            measured = self.estimator.roll_degrees(rgb, [boxes[j] for j in due])
            for j, roll in zip(due, measured):
                self._rolls[keys[j]] = (float(roll), now)
        return [self._rolls[key][0] for key in keys]

    def release(self, key: tuple) -> None:
        self._rolls.pop(key, None)

    def keys(self) -> list[tuple]:
        return list(self._rolls)


def crop_angle(roll: float, min_deg: float) -> float:
    """The turn to apply for a measured ``roll``: none below ``min_deg`` (a near-upright face's
    landmark jitter would only add noise), else the whole roll."""
    return roll if math.isfinite(roll) and abs(roll) >= min_deg else 0.0
