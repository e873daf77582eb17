"""Training-data throughput: sampled clips per second from JPEG frame folders.

Writes a DFEW-like layout (224x224 face frames) and a FERV39k-like one (224x224 faces + 640x360
scenes) in a temporary folder, from skimage's astronaut photo so JPEG decoding sees real image
content, then times ``ClipDataset`` through a DataLoader (16 frames per clip, the ViT-L/14 input
size) for a few worker counts. A GPU epoch on DFEW (~9.4k training clips) needs the loader to keep
up with the model: divide the clip count by clips/s for the loader's share of an epoch.
Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/clip_loading.py
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data
from emotion_perception.training.datasets import ClipDataset, clip_loader, read_dfew, read_ferv39k


def write_clip(folder: Path, n: int, size: tuple[int, int], rng) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for k in range(n):
        y, x = rng.integers(0, 100, 2)
        crop = photo[y : y + 400, x : x + 400]
        cv2.imwrite(str(folder / f"{k + 1}.jpg"), cv2.resize(crop, size, interpolation=cv2.INTER_AREA))


def make_layouts(root: Path, clips: int, frames: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1, clips + 1):
        write_clip(root / "dfew" / "Clip" / "clip_224x224" / f"{i:05d}", frames, (224, 224), rng)
        rel = f"Action/Happy/{i:04d}"
        write_clip(root / "ferv" / "2_ClipsforFaceCrop" / rel, frames, (224, 224), rng)
        write_clip(root / "ferv" / "3_ClipsforScenImages" / rel, frames, (640, 360), rng)
        rows.append(rel)
    split = root / "dfew" / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    split.parent.mkdir(parents=True)
    split.write_text("video_name,label\n" + "".join(f"{i},1\n" for i in range(1, clips + 1)))
    ferv = root / "ferv" / "4_setups" / "All_scenes" / "train_All.csv"
    ferv.parent.mkdir(parents=True)
    ferv.write_text("".join(f"{rel} Happy\n" for rel in rows))


def clips_per_second(dataset: ClipDataset, workers: int, repeats: int) -> float:
    loader = clip_loader(dataset, 8, workers, shuffle=False)
    next(iter(loader))  # start the workers outside the timing
    t0 = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for batch in loader:
            n += batch["face"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=32, help="frames per clip on disk")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results = {"cpus": os.cpu_count(), "clips": args.clips, "frames_on_disk": args.frames, "num_frames": 16,
               "face_size": 224, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_layouts(root, args.clips, args.frames)
        datasets = {
            "dfew (frame doubles as scene)": ClipDataset(read_dfew(root / "dfew", 1, "train"), train=True,
                                                         scene_from_face=True),
            "ferv39k (faces + 640x360 scenes)": ClipDataset(read_ferv39k(root / "ferv", "train"), train=True),
        }
        for name, ds in datasets.items():
            for workers in args.workers:
                rate = clips_per_second(ds, workers, args.repeats)
                results["runs"].append({"dataset": name, "workers": workers, "clips_per_s": round(rate, 1)})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
