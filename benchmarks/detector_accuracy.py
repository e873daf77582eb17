#!/usr/bin/env python3
"""Face detectors alone on the labelled dev set: face-found rate, phantom rate, CPU ms per frame.

Every labelled frame of ``../shared/data/eval`` (videos and photos) plus the photos of
``images/emotion_labeled`` goes through each detector once, without tracker or model, and is
matched to its labels exactly as ``emotion-perception eval-set`` matches estimates
(``evaluation.evalset.match_faces``): found = labelled faces with a detection / labelled faces,
phantom rate = labelled frames with a detection where nobody is / labelled frames. This is what
the detector gives the tracker; ``benchmarks/accuracy.py --detector NAME`` scores the whole engine.

``--opencv-grid`` sweeps the cascade's settings (scale factor, neighbours, search size) on the
whole set, for tuning the fallback without tuning per file.

``--fit W H`` shows every frame as a W x H camera would (scaled down to fit, never up, centred
on black), and ``--distances`` shrinks it further on that canvas (0.5: the people twice as far
away); each labelled photo face (the ones with a box) is then also counted in a bin of its side
in pixels of the frame the detector sees, so "faces found per face size" reads off directly.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/detector_accuracy.py
    ... benchmarks/detector_accuracy.py --detectors opencv --opencv-grid --every 4 --max-sides 256 320 400
    ... benchmarks/detector_accuracy.py --detectors mtcnn --set min_size=24 --fit 640 480 --distances 1 0.5 0.25
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ros2_ws" / "src" / "emotion_perception"))

from emotion_perception.evaluation import evalset  # noqa: E402
from emotion_perception.evaluation.video import VideoSource  # noqa: E402
from emotion_perception.faces import create_detector  # noqa: E402

BLAZEFACE_FILES = {"blazeface": ("blazeface.pth", "anchors.npy"), "blazeface_back": ("blazefaceback.pth", "anchorsback.npy")}


SIZE_BINS = (0, 24, 32, 48, 64, 96, 192)  # face side, px of the frame the detector sees


def labelled_frames(items, every: int = 1):
    """(item, labels, RGB frame) for every ``every``-th labelled video frame and every photo."""
    for item in items:
        if item.kind == "video":
            for index, frame in enumerate(VideoSource(item.path, start_ns=0, source=item.name)):
                if item.labels.get(index) and index % every == 0:
                    yield item, item.labels[index], frame.image
        else:
            yield item, item.labels[0], evalset.read_image(item.path)


def on_camera(frames, width: int, height: int, distance: float = 1.0):
    """``frames`` as a width x height camera sees them: scaled to fit (never up) times ``distance``,
    centred on black; labelled boxes moved with the image."""
    import cv2

    for item, labels, image in frames:
        scale = min(width / image.shape[1], height / image.shape[0], 1.0) * distance
        w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
        x0, y0 = (width - w) // 2, (height - h) // 2
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[y0 : y0 + h, x0 : x0 + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        moved = [label if label.box is None else replace(label, box=type(label.box)(
            x0 + label.box.x * scale, y0 + label.box.y * scale, label.box.w * scale, label.box.h * scale))
            for label in labels]
        yield item, moved, canvas


def size_bin(side: float) -> str:
    low = max(edge for edge in SIZE_BINS if edge <= side)
    higher = [edge for edge in SIZE_BINS if edge > side]
    return f"{low}-{higher[0]}" if higher else f">={low}"


def score(detector, frames) -> dict:
    """Found and phantom rates of ``detector`` over the frames, overall, per item and per face
    size (labelled faces with a box only)."""
    per_item: dict[str, dict] = {}
    by_size: dict[str, dict] = {}
    cpu = 0.0
    for item, labels, image in frames:
        start = time.process_time()
        found = detector.detect(image)
        cpu += time.process_time() - start
        matched, phantoms = evalset.match_faces(item, labels, [d.box for d in found], image.shape[1])
        counts = per_item.setdefault(item.name, {"faces": 0, "found": 0, "frames": 0, "phantom_frames": 0})
        counts["faces"] += len(labels)
        counts["found"] += sum(label.person in matched for label in labels)
        counts["frames"] += 1
        counts["phantom_frames"] += bool(phantoms)
        for label in labels:
            if label.box is not None:
                size = by_size.setdefault(size_bin(max(label.box.w, label.box.h)), {"faces": 0, "found": 0})
                size["faces"] += 1
                size["found"] += label.person in matched
    total = {k: sum(c[k] for c in per_item.values()) for k in ("faces", "found", "frames", "phantom_frames")}
    order = {size_bin(edge): i for i, edge in enumerate(SIZE_BINS)}
    return {
        "found_rate": round(total["found"] / total["faces"], 4),
        "phantom_rate": round(total["phantom_frames"] / total["frames"], 4),
        "cpu_ms_per_frame": round(1000 * cpu / total["frames"], 2),
        **total,
        "found_by_face_side_px": {k: by_size[k] for k in sorted(by_size, key=order.get)},
        "items_below_full": {
            name: {"found_rate": round(c["found"] / c["faces"], 3), "phantom_frames": c["phantom_frames"]}
            for name, c in per_item.items() if c["found"] < c["faces"] or c["phantom_frames"]
        },
    }


def detector_options(pairs: list[str]) -> dict:
    """``["min_size=24", ...]`` -> constructor keywords with number values."""
    options = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        try:
            options[name.strip()] = int(text) if text.strip().lstrip("-").isdigit() else float(text)
        except ValueError:
            raise SystemExit(f"--set {pair!r}: expected OPTION=NUMBER") from None
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected OPTION=NUMBER")
    return options


def build(name: str, blazeface_dir: Path, options: dict):
    weights, anchors = BLAZEFACE_FILES.get(name, (None, None))
    return create_detector(
        name,
        path_to_detector=weights and blazeface_dir / weights,
        path_to_anchor=anchors and blazeface_dir / anchors,
        **options,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = Path(os.environ.get("EMOTION_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--detectors", nargs="+", default=["opencv", "blazeface", "blazeface_back", "mtcnn", "dlib_hog"])
    parser.add_argument("--opencv-grid", action="store_true",
                        help="sweep every combination of the cascade settings below (opencv only)")
    parser.add_argument("--scale-factors", type=float, nargs="+", default=[1.1, 1.15, 1.2])
    parser.add_argument("--min-neighbors", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--max-sides", type=int, nargs="+", default=[256, 320, 400])
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenCV threads")
    parser.add_argument("--every", type=int, default=1, help="score every N-th labelled video frame (faster sweeps)")
    parser.add_argument("--fit", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="show every frame as a W x H camera would (scaled down to fit, centred)")
    parser.add_argument("--distances", type=float, nargs="+", default=[1.0],
                        help="with --fit: also shrink the frame's content by these factors (0.5: twice as far)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="OPTION=VALUE",
                        help="detector constructor option, e.g. min_size=24 (repeatable)")
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    items = evalset.load_eval_set(args.data / "eval") + evalset.named_image_items(args.data / "images" / "emotion_labeled")
    frames = list(labelled_frames(items, args.every))
    views = {None: frames}
    if args.fit:
        views = {d: list(on_camera(frames, *args.fit, d)) for d in args.distances}
    results = []
    for name in args.detectors:
        grid = [detector_options(args.settings)]
        if name == "opencv" and args.opencv_grid:
            grid = [
                {"scale_factor": f, "min_neighbors": n, "max_side": m}
                for f, n, m in itertools.product(args.scale_factors, args.min_neighbors, args.max_sides)
            ]
        for options in grid:
            try:
                detector = build(name, args.data / "blazeface", options)
            except (FileNotFoundError, ImportError) as error:
                results.append({"detector": name, "skipped": str(error)})
                continue
            for distance, view in views.items():
                where = {} if distance is None else {"fit": args.fit, "distance": distance}
                results.append({"detector": name, **options, **where, **score(detector, view)})
                print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({
        "benchmark": "detector_accuracy",
        "frames": len(frames),
        "every": args.every,
        "items": len(items),
        "threads": args.threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "results": results,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
