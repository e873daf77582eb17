"""Small on-disk datasets in the DFEW and FERV39k layouts, written with cv2.imwrite.

Each class gets its own colour (plus noise), so a model can learn to tell classes apart: the
training tests use that to check that the loop really learns.

DFEW's original videos (``Clip/original/<id>.mp4``, cv2.VideoWriter) show a class-coloured
square "face" on a scene background of another colour; the square's centre holds a grey block
whose level encodes the frame number, and every ``NO_FACE_EVERY``-th frame has no square, so
tests can check that prepared face crops and scene frames pair frame by frame. ``BlobDetector``
finds that square (the real detectors look for real faces).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotion_perception.faces.base import FaceDetector

# BGR colours per DFEW label 1..7 (happy, sad, neutral, angry, surprise, disgust, fear).
DFEW_COLOURS = {
    1: (0, 220, 255), 2: (200, 60, 20), 3: (128, 128, 128), 4: (20, 20, 230),
    5: (230, 230, 20), 6: (30, 160, 30), 7: (160, 20, 160),
}
FERV_NAMES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
_FERV_TO_DFEW = {"Happy": 1, "Sad": 2, "Neutral": 3, "Angry": 4, "Surprise": 5, "Disgust": 6, "Fear": 7}


def write_frames(folder: Path, n: int, colour, size: int = 24, prefix: str = "frame_", rng=None, ext=".jpg"):
    """n frames named prefix1..prefixN (unpadded, so natural sort matters); frame k encodes k."""
    rng = rng if rng is not None else np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        img = np.empty((size, size, 3), np.uint8)
        img[:] = colour
        noise = rng.integers(-20, 21, img.shape)
        img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
        img[0, 0] = (k, k, k)  # position marker (corner pixel, survives only in PNGs)
        cv2.imwrite(str(folder / f"{prefix}{k}{ext}"), img)


VIDEO_SIZE = (96, 72)  # width, height of the original videos
SQUARE = 30  # side of the "face" square
NO_FACE_EVERY = 5  # frames 5, 10, ... show no face


def marker_level(k: int) -> int:
    """Grey level of the centre block of frame k (1-based): 14 levels apart, far above codec noise."""
    return 20 + 14 * (k % 16)


def scene_colour(label: int):
    """The background of a class's videos: 128 levels from its face colour in every channel."""
    return tuple((c + 128) % 256 for c in DFEW_COLOURS[label])


def write_video(path: Path, n: int, label: int, rng, faceless: bool = False) -> None:
    """An original clip: the square moves right by 2 px a frame; no square on every 5th frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = VIDEO_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    for k in range(1, n + 1):
        img = np.empty((height, width, 3), np.int16)
        img[:] = scene_colour(label)
        if not faceless and k % NO_FACE_EVERY:
            x0, y0 = 16 + 2 * (k % 16), 20
            img[y0:y0 + SQUARE, x0:x0 + SQUARE] = DFEW_COLOURS[label]
            c = SQUARE // 2
            img[y0 + c - 5:y0 + c + 5, x0 + c - 5:x0 + c + 5] = marker_level(k)
        img += rng.integers(-6, 7, img.shape, dtype=np.int16)
        writer.write(np.clip(img, 0, 255).astype(np.uint8))
    writer.release()


class BlobDetector(FaceDetector):
    """Finds the fake videos' square: the bounding box of pixels far from the frame's median colour."""

    name = "blob"

    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        far = np.abs(rgb.astype(np.int16) - np.median(rgb, axis=(0, 1))).sum(-1) > 90
        ys, xs = np.nonzero(far)
        if len(xs) < 50:
            return np.zeros((0, 5))
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 1.0]])


def make_dfew(root: Path, clips_per_class: int = 3, frames=(6, 20), folds=(1,), size: int = 24, seed: int = 0,
              originals: bool = False, faceless=()):
    """A fake DFEW: every class has ``clips_per_class`` train and 1 test clip per fold.

    Folder names are zero-padded ("00001") while the csv lists "1", as in the real dataset. With
    ``originals`` each clip also gets ``Clip/original/<id>.mp4`` (the clip ids in ``faceless``
    show no face at all). Returns {fold: {"train": [(id, label)], "test": [...]}}.
    """
    rng = np.random.default_rng(seed)
    clip_dir = root / "Clip" / "clip_224x224"
    splits = {}
    next_id = 1
    for fold in folds:
        splits[fold] = {"train": [], "test": []}
        for label in range(1, 8):
            for split, count in (("train", clips_per_class), ("test", 1)):
                for _ in range(count):
                    n = int(rng.integers(frames[0], frames[1] + 1))
                    write_frames(clip_dir / f"{next_id:05d}", n, DFEW_COLOURS[label], size, rng=rng,
                                 prefix=f"{next_id:05d}_")
                    if originals:
                        write_video(root / "Clip" / "original" / f"{next_id:05d}.mp4", n, label, rng,
                                    faceless=next_id in faceless)
                    splits[fold][split].append((next_id, label))
                    next_id += 1
        for split, sub in (("train", "train(single-labeled)"), ("test", "test(single-labeled)")):
            write_dfew_csv(root / "EmoLabel_DataSplit" / sub / f"set_{fold}.csv", splits[fold][split])
    return splits


def write_dfew_csv(path: Path, rows, header: str = "video_name,label"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{cid},{label}\n" for cid, label in rows))


def make_ferv39k(root: Path, clips_per_class: int = 2, frames=(5, 12), size: int = 24, scene_size: int = 40,
                 seed: int = 0, header: bool = False):
    """A fake FERV39k: face crops and scene frames under the same <Scene>/<Emotion>/<clip> paths.

    Split files hold "<path> <Label>" rows. Returns {"train": [(path, name)], "test": [...]}.
    """
    rng = np.random.default_rng(seed)
    splits = {"train": [], "test": []}
    for name in FERV_NAMES:
        for split, count in (("train", clips_per_class), ("test", 1)):
            for k in range(count):
                rel = f"{'Action' if k % 2 else 'Interview'}/{name}/{split}{k:04d}"
                n = int(rng.integers(frames[0], frames[1] + 1))
                colour = DFEW_COLOURS[_FERV_TO_DFEW[name]]
                write_frames(root / "2_ClipsforFaceCrop" / rel, n, colour, size, rng=rng)
                write_frames(root / "3_ClipsforScenImages" / rel, n, colour[::-1], scene_size, rng=rng)
                splits[split].append((rel, name))
    for split, rows in splits.items():
        path = root / "4_setups" / "All_scenes" / f"{split}_All.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(("path label\n" if header else "") + "".join(f"{rel} {name}\n" for rel, name in rows))
    return splits
