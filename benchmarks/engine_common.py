"""Shared pieces of the engine benchmarks: real face frames, a fixed-box detector, environment."""
from __future__ import annotations

import os
from dataclasses import dataclass
import platform
import resource
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ros2_ws" / "src" / "emotion_perception"))

from emotion_perception.evaluation import evalset  # noqa: E402
from emotion_perception.types import Box, Detection, Frame  # noqa: E402

SHARED_DATA = Path(os.environ.get("EMOTION_SHARED_DATA", REPO.parent / "shared" / "data"))
VIDEO = SHARED_DATA / "videos" / "single_face.mp4"
EVAL = SHARED_DATA / "eval"
TWO_PEOPLE = EVAL / "videos" / "intel_head-pose-face-detection-female-and-male.mp4"
GROUP_SELFIE = "oarriaga_bitbots_team_selfie.jpg"
# four / six different people of the London set (labelled boxes in eval/images/labels.csv)
LONDON_FOUR = ("london_002_neutral.jpg", "london_037_smiling.jpg", "london_064_neutral.jpg", "london_107_smiling.jpg")
LONDON_SIX = LONDON_FOUR + ("london_103_smiling.jpg", "london_130_neutral.jpg")


def fit(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, int, int]:
    """(canvas, scale, x0, y0): ``image`` scaled to fit width x height, centred on black."""
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    canvas = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - w) // 2, (height - h) // 2
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas[y0 : y0 + h, x0 : x0 + w] = cv2.resize(image, (w, h), interpolation=interpolation)
    return canvas, scale, x0, y0


def astronaut_canvas(width: int = 640, height: int = 480) -> np.ndarray:
    """skimage's astronaut (one real face) scaled to the frame height, centred on a black canvas."""
    from skimage import data

    return fit(data.astronaut(), width, height)[0]


def drifting(base: np.ndarray, n: int, distinct: int = 32) -> list[np.ndarray]:
    """n frames of ``base`` drifting a few pixels per frame (a live camera is never static);
    ``distinct`` images are cycled so that long runs do not inflate the process's memory."""
    images = [
        np.roll(base, shift=(int(3 * np.sin(i / 5)), int(4 * np.sin(i / 7))), axis=(0, 1))
        for i in range(min(n, distinct))
    ]
    return [images[i % len(images)] for i in range(n)]


def astronaut_frames(n: int, width: int = 640, height: int = 480, distinct: int = 32) -> list[np.ndarray]:
    """n frames of the astronaut drifting a few pixels per frame."""
    return drifting(astronaut_canvas(width, height), n, distinct)


def video_frames(n: int, width: int = 640, height: int = 480, path: Path = VIDEO, letterbox: bool = False) -> list[np.ndarray]:
    """n frames of a real video resized to width x height (looped if shorter); with ``letterbox``
    scaled to fit and centred on black instead of stretched."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frames.append(fit(rgb, width, height)[0] if letterbox else
                      cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SystemExit(f"could not read frames from {path}")
    return [frames[i % len(frames)] for i in range(n)]


@dataclass
class Scene:
    """Frames with a known number of real faces; ``boxes``: where they are (frame pixels, before
    the few pixels of drift), None where only the count is known (a video)."""

    name: str
    faces: int
    images: list[np.ndarray]
    boxes: list[Box] | None


def _labelled_photos() -> dict[str, tuple[Path, list[Box]]]:
    items = evalset.load_image_items(EVAL / "images" / "labels.csv")
    return {item.name: (item.path, [label.box for label in item.labels[0]]) for item in items}


def _tiled(names: tuple[str, ...], columns: int, rows: int, width: int, height: int) -> tuple[np.ndarray, list[Box]]:
    """The labelled photos ``names`` fitted into a columns x rows grid of a width x height frame."""
    photos = _labelled_photos()
    canvas = np.zeros((height, width, 3), np.uint8)
    cell_w, cell_h = width // columns, height // rows
    boxes = []
    for k, name in enumerate(names):
        path, labelled = photos[name]
        cell, scale, x0, y0 = fit(evalset.read_image(path), cell_w, cell_h)
        cx, cy = (k % columns) * cell_w, (k // columns) * cell_h
        canvas[cy : cy + cell_h, cx : cx + cell_w] = cell
        boxes += [Box(cx + x0 + b.x * scale, cy + y0 + b.y * scale, b.w * scale, b.h * scale) for b in labelled]
    return canvas, boxes


SCENES = {
    "astronaut": "1 face: skimage's astronaut, face ~190 px",
    "two_people": "2 faces: the two-person intel clip (480x270, 12 fps, head turns), letterboxed; faces ~50-60 px",
    "london4": "4 faces: four London portraits tiled 2x2; faces ~95 px",
    "selfie": "6 faces: the dev set's group selfie at 640x480; back row 30-36 px, selfie taker ~180 px",
    "london6": "6 faces: six London portraits tiled 3x2; faces ~85 px",
}


def scene(name: str, n: int, width: int = 640, height: int = 480) -> Scene:
    """One of ``SCENES`` as n drifting frames of width x height."""
    if name == "astronaut":
        return Scene(name, 1, astronaut_frames(n, width, height), None)
    if name == "two_people":
        return Scene(name, 2, video_frames(n, width, height, TWO_PEOPLE, letterbox=True), None)
    if name == "selfie":
        path, labelled = _labelled_photos()[GROUP_SELFIE]
        base, scale, x0, y0 = fit(evalset.read_image(path), width, height)
        return Scene(name, len(labelled), drifting(base, n),
                     [Box(x0 + b.x * scale, y0 + b.y * scale, b.w * scale, b.h * scale) for b in labelled])
    if name in ("london4", "london6"):
        names, columns = (LONDON_FOUR, 2) if name == "london4" else (LONDON_SIX, 3)
        base, boxes = _tiled(names, columns, 2, width, height)
        return Scene(name, len(names), drifting(base, n), boxes)
    raise ValueError(f"unknown scene {name!r}; one of {sorted(SCENES)}")


def as_frames(images: list[np.ndarray], source: str = "") -> list[Frame]:
    return [Frame(img, stamp_ns=i * 33_333_333, frame_id="camera", source=source) for i, img in enumerate(images)]


class FixedDetector:
    """Always returns the same detections: isolates the engine/model from detector cost."""

    def __init__(self, detections: list[Detection]):
        self.detections = list(detections)

    def detect(self, rgb):
        return list(self.detections)


def build_benchmark_model(profile_name: str, device: str = "cpu", weights_dir=None, random_weights: bool = False):
    """The profile's model; with ``random_weights`` its backbone/head files are left out (same
    architecture and FLOPs, random weights): enough to measure speed without the weight files."""
    from dataclasses import replace

    from emotion_perception.models.registry import build_model, get_profile

    profile = get_profile(profile_name)
    if random_weights:
        head = {k: v for k, v in profile.head.items() if k not in ("checkpoint", "sha256", "package_file")}
        backbone = {"model": profile.backbone["model"]} if profile.backbone else {}
        profile = replace(profile, backbone=backbone, head=head)
    return build_model(profile, device, weights_dir).eval()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1min": os.getloadavg()[0],
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def summary_ms(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "p50": float(np.percentile(v, 50)),
        "p95": float(np.percentile(v, 95)),
        "p99": float(np.percentile(v, 99)),
        "n": int(v.size),
    }
