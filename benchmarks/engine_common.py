"""Shared pieces of the engine benchmarks: real face frames, a fixed-box detector, environment."""
from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ros2_ws" / "src" / "emotion_perception"))

from emotion_perception.types import Detection, Frame  # noqa: E402

SHARED_DATA = Path(os.environ.get("EMOTION_SHARED_DATA", REPO.parent / "shared" / "data"))
VIDEO = SHARED_DATA / "videos" / "single_face.mp4"


def astronaut_canvas(width: int = 640, height: int = 480) -> np.ndarray:
    """skimage's astronaut (one real face) scaled to the frame height, centred on a black canvas."""
    from skimage import data

    side = min(width, height)
    canvas = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - side) // 2, (height - side) // 2
    canvas[y0 : y0 + side, x0 : x0 + side] = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    return canvas


def astronaut_frames(n: int, width: int = 640, height: int = 480, distinct: int = 32) -> list[np.ndarray]:
    """n frames of the astronaut drifting a few pixels per frame (a live camera is never static);
    ``distinct`` images are cycled so that long runs do not inflate the process's memory."""
    base = astronaut_canvas(width, height)
    images = [
        np.roll(base, shift=(int(3 * np.sin(i / 5)), int(4 * np.sin(i / 7))), axis=(0, 1))
        for i in range(min(n, distinct))
    ]
    return [images[i % len(images)] for i in range(n)]


def video_frames(n: int, width: int = 640, height: int = 480, path: Path = VIDEO) -> list[np.ndarray]:
    """n frames of a real one-face video resized to width x height (looped if shorter)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height), interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SystemExit(f"could not read frames from {path}")
    return [frames[i % len(frames)] for i in range(n)]


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
