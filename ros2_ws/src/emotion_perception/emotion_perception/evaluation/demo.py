"""The README's main job: record, run and score a short clip on any machine, offline, CPU, no ROS.

The clip is made from scikit-image's bundled astronaut photo (a real, smiling face, public
domain): a slow pan and zoom over the face (so the tracker keeps one id while the box moves),
then a cut to a part of the photo without a face (the camera "looks away"). The face frames are
labelled happy; the face-less frames are unlabelled, so a detection there shows up in the report
as "frames with faces but no label".
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from ..labels import class_id
from ..types import Frame
from .bags import write_image_bag
from .labels_file import LabelRange, write_labels

FPS = 15
FACE_FRAMES = 60  # 4 s of pan/zoom over the face
AWAY_FRAMES = 12  # 0.8 s looking away
SIZE = 256  # output frames are SIZE x SIZE
TOPIC = "/camera/image_raw"
FRAME_ID = "head_camera"
VIDEO = "annotated.webm"  # VP8: plays in browsers (the pip OpenCV wheels have no H.264 encoder)
# What the demo writes under --out (removed before a new run, nothing else is touched; earlier
# versions wrote annotated.mp4).
OUTPUTS = ("recording", "labels.csv", "results", "results.jsonl", "run.json", VIDEO, "annotated.mp4", "report")


def _crop(image: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(side, h, w)
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    s = int(round(side))
    return cv2.resize(image[y0:y0 + s, x0:x0 + s], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def demo_frames(photo: np.ndarray, start_ns: int) -> list[Frame]:
    """Pan/zoom over the astronaut's face (centre ~(225, 114) in the 512 px photo), then away."""
    frames = []
    for i in range(FACE_FRAMES):
        a = i / (FACE_FRAMES - 1)
        frames.append(_crop(photo, 250 - 25 * a, 190 - 60 * a, 360 - 120 * a))  # zoom in on the face
    for i in range(AWAY_FRAMES):
        a = i / max(AWAY_FRAMES - 1, 1)
        frames.append(_crop(photo, 400 - 40 * a, 410, 200))  # lower right: suit and flag, no face
    period = 1_000_000_000 // FPS
    return [Frame(np.ascontiguousarray(rgb), start_ns + i * period, FRAME_ID) for i, rgb in enumerate(frames)]


def prepare(out_dir: str | Path) -> Path:
    """Create ``out_dir``, removing the outputs of a previous demo there (only those)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return out


def make_recording(out_dir: Path, start_ns: int | None = None) -> tuple[Path, Path, int]:
    """Write the demo bag and its labels; returns (bag, labels.csv, frames)."""
    from skimage import data  # the demo extra; a clear ImportError names the package

    frames = demo_frames(data.astronaut(), time.time_ns() if start_ns is None else start_ns)
    bag = out_dir / "recording"
    count = write_image_bag(frames, bag, TOPIC, "rgb8")
    labels = write_labels(out_dir / "labels.csv", [LabelRange(0, FACE_FRAMES, class_id("happy"))])
    return bag, labels, count
