"""Small on-disk datasets in the DFEW and FERV39k layouts, written with cv2.imwrite.

Each class gets its own colour (plus noise), so a model can learn to tell classes apart: the
training tests use that to check that the loop really learns.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

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


def make_dfew(root: Path, clips_per_class: int = 3, frames=(6, 20), folds=(1,), size: int = 24, seed: int = 0):
    """A fake DFEW: every class has ``clips_per_class`` train and 1 test clip per fold.

    Folder names are zero-padded ("00001") while the csv lists "1", as in the real dataset.
    Returns {fold: {"train": [(id, label)], "test": [...]}}.
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
