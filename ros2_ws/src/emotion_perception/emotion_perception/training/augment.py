"""Train-time clip augmentations, drawn once per clip and applied alike to every frame.

A video model must see one consistent clip: if each frame were cropped, rotated or re-coloured
on its own, the jitter between frames would look like motion. So ``draw_clip`` makes one random
draw per clip (random resized crop, horizontal flip, rotation, colour jitter — the set the DuSE
paper lists) and ``apply_clip`` applies it to every valid frame. The same draw is applied to the
face and the scene stream of a clip (the crop box is relative, so it suits both sizes); a
flipped face then stays paired with a flipped scene. Evaluation never augments.

Geometry is one affine warp per frame (crop, resize, rotation and flip composed into one
matrix; borders reflect rather than turn black). Colour jitter follows torchvision's
ColorJitter definitions (brightness scales, contrast and saturation blend towards the frame's
grey mean / grey image, hue rotates) in a fixed order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Random resized crop: aspect ratios drawn log-uniformly in [3/4, 4/3], as torchvision does.
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB -> grey (ITU-R 601-2)


@dataclass
class AugmentConfig:
    """Strength of each augmentation; the defaults are a horizontal flip only."""

    flip: float = 0.5  # probability of a horizontal flip
    crop_scale: float = 1.0  # smallest area fraction of the random resized crop; 1.0 = no crop
    rotation: float = 0.0  # largest rotation, degrees (drawn uniformly in ±rotation)
    colour_jitter: float = 0.0  # brightness/contrast/saturation factors in 1 ± j; hue ± j/4 of the circle

    def validate(self, where: str = "augment") -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"{where}.flip must be a probability in [0, 1], got {self.flip}")
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(f"{where}.crop_scale must be in (0, 1], got {self.crop_scale}")
        if not 0.0 <= self.rotation <= 180.0:
            raise ValueError(f"{where}.rotation must be in [0, 180] degrees, got {self.rotation}")
        if not 0.0 <= self.colour_jitter < 1.0:
            raise ValueError(f"{where}.colour_jitter must be in [0, 1), got {self.colour_jitter}")


@dataclass(frozen=True)
class ClipDraw:
    """One clip's augmentation parameters (the crop box is relative to the frame: x, y, w, h)."""

    flip: bool = False
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    angle: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0  # fraction of the hue circle

    @property
    def geometric(self) -> bool:
        return self.flip or self.box != (0.0, 0.0, 1.0, 1.0) or self.angle != 0.0

    @property
    def photometric(self) -> bool:
        return (self.brightness, self.contrast, self.saturation, self.hue) != (1.0, 1.0, 1.0, 0.0)


def draw_clip(cfg: AugmentConfig, rng: np.random.Generator) -> ClipDraw:
    """One random draw for a whole clip."""
    flip = cfg.flip > 0 and rng.random() < cfg.flip
    box = (0.0, 0.0, 1.0, 1.0)
    if cfg.crop_scale < 1.0:
        area = rng.uniform(cfg.crop_scale, 1.0)
        ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w = min(1.0, math.sqrt(area * ratio))
        h = min(1.0, math.sqrt(area / ratio))
        box = (rng.uniform(0.0, 1.0 - w), rng.uniform(0.0, 1.0 - h), w, h)
    angle = rng.uniform(-cfg.rotation, cfg.rotation) if cfg.rotation > 0 else 0.0
    j = cfg.colour_jitter
    if j > 0:
        brightness, contrast, saturation = rng.uniform(1.0 - j, 1.0 + j, size=3)
        hue = rng.uniform(-j / 4, j / 4)
    else:
        brightness = contrast = saturation = 1.0
        hue = 0.0
    return ClipDraw(bool(flip), tuple(float(v) for v in box), float(angle),
                    float(brightness), float(contrast), float(saturation), float(hue))


def clip_affine(draw: ClipDraw, size: int) -> np.ndarray:
    """2x3 matrix mapping source pixels of a ``size`` square frame to the augmented frame."""
    x, y, w, h = (v * size for v in draw.box)
    # Continuous coordinates (pixel i spans [i, i + 1)); cv2 puts pixel centres on integers.
    centre_src = np.array([x + w / 2, y + h / 2]) - 0.5
    centre_dst = size / 2 - 0.5
    scale = np.diag([size / w, size / h])
    theta = math.radians(draw.angle)
    rotate = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    flip = np.diag([-1.0 if draw.flip else 1.0, 1.0])
    linear = flip @ rotate @ scale
    offset = centre_dst - linear @ centre_src
    return np.hstack([linear, offset[:, None]])


def apply_clip(frames: np.ndarray, draw: ClipDraw, valid: np.ndarray | None = None) -> np.ndarray:
    """``draw`` applied to every valid frame of uint8 [T, S, S, 3] RGB (padding stays as is)."""
    out = frames.copy()
    size = frames.shape[1]
    matrix = clip_affine(draw, size) if draw.geometric else None
    for t in range(len(frames)):
        if valid is not None and not valid[t]:
            continue
        frame = frames[t]
        if matrix is not None:
            frame = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT_101)
        if draw.photometric:
            frame = _jitter(frame, draw)
        out[t] = frame
    return out


def _jitter(rgb: np.ndarray, draw: ClipDraw) -> np.ndarray:
    img = rgb.astype(np.float32) * draw.brightness
    img = np.clip(img, 0, 255)
    mean = float((img @ _LUMA).mean())
    img = np.clip((img - mean) * draw.contrast + mean, 0, 255)
    grey = (img @ _LUMA)[..., None]
    img = np.clip((img - grey) * draw.saturation + grey, 0, 255).astype(np.uint8)
    if draw.hue:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # uint8 hue in 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(draw.hue * 180))) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img
