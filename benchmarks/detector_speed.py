#!/usr/bin/env python3
"""Face detector speed on one 640x480 frame with one face; prints JSON.

The frame is the first frame of ``videos/single_face.mp4`` from the shared test data, scaled to
480 px high and centre-cropped to 640 px (no distortion). Wall time is what a camera loop sees;
CPU time (process time / frame) is less sensitive to other jobs sharing the machine, so both are
reported together with the load average.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/detector_speed.py --threads 1
    ... benchmarks/detector_speed.py --detectors opencv dlib_cnn --frames 3   # dlib_cnn: seconds per frame on CPU
    ... benchmarks/detector_speed.py --detectors mtcnn --mtcnn-min-size 40 24 --frame selfie   # the group selfie at 640x480
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ros2_ws" / "src" / "emotion_perception"))

from emotion_perception.faces import create_detector  # noqa: E402

WEIGHTS = {  # file names, as face-alignment and models/fetch name them
    "opencv": (None, None),
    "blazeface": ("blazeface.pth", "anchors.npy"),
    "blazeface_back": ("blazefaceback.pth", "anchorsback.npy"),
    "sfd": ("s3fd-619a316812.pth", None),
    # weights from pip packages (facenet-pytorch, dlib-bin, face-recognition-models), found by the classes
    "mtcnn": (None, None),
    "dlib_hog": (None, None),
    "dlib_cnn": (None, None),
}


def test_frame(data: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(data / "videos" / "single_face.mp4"))
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read {data / 'videos' / 'single_face.mp4'}")
    scale = 480 / bgr.shape[0]
    bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), 480), interpolation=cv2.INTER_AREA)
    left = (bgr.shape[1] - 640) // 2
    return np.ascontiguousarray(cv2.cvtColor(bgr[:, left : left + 640], cv2.COLOR_BGR2RGB))


def selfie_frame(data: Path) -> np.ndarray:
    """The dev set's group selfie (2048x1536, six labelled faces) at 640x480: faces of 30-180 px."""
    bgr = cv2.imread(str(data / "eval" / "images" / "oarriaga_bitbots_team_selfie.jpg"))
    if bgr is None:
        raise SystemExit(f"cannot read the group selfie under {data / 'eval' / 'images'}")
    return np.ascontiguousarray(cv2.cvtColor(cv2.resize(bgr, (640, 480), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))


def measure(detectors: dict, frame: np.ndarray, frames: int, warmup: int = 5) -> dict:
    """Per detector: faces, top box, wall and CPU ms per frame. The detectors take turns frame by
    frame, so a machine that gets busier during the run slows them all alike."""
    faces = {}
    for _ in range(warmup):
        for key, detector in detectors.items():
            faces[key] = detector.detect(frame)
    wall = {key: [] for key in detectors}
    cpu = dict.fromkeys(detectors, 0.0)
    for _ in range(frames):
        for key, detector in detectors.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            detector.detect(frame)
            cpu[key] += time.process_time() - cpu_start
            wall[key].append((time.perf_counter() - start) * 1000)
    results = {}
    for key, found in faces.items():
        median = statistics.median(wall[key])
        results[key] = {
            "faces": len(found),
            "top_box_xywh": [round(v) for v in (found[0].box.x, found[0].box.y, found[0].box.w, found[0].box.h)]
            if found
            else None,
            "wall_ms_median": round(median, 2),
            "wall_ms_p90": round(sorted(wall[key])[int(0.9 * (len(wall[key]) - 1))], 2),
            "cpu_ms_per_frame": round(cpu[key] * 1000 / frames, 2),
            "fps_median": round(1000 / median, 1),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("EMOTION_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument(
        "--weights", type=Path, default=None, help="weights dir (files under detectors/; default: DATA/blazeface)"
    )
    parser.add_argument("--detectors", nargs="+", default=["opencv", "blazeface", "blazeface_back", "mtcnn", "dlib_hog"])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch/OpenCV thread counts to try")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--opencv-max-side", type=int, nargs="+", default=[256, 320], help="sizes to try")
    parser.add_argument("--mtcnn-min-size", type=float, nargs="+", default=[None],
                        help="MTCNN smallest face sizes to try (default: the detector's)")
    parser.add_argument("--frame", choices=("single_face", "selfie"), default="single_face")
    args = parser.parse_args()

    import torch

    load_before = round(os.getloadavg()[0], 2)
    weights_dir = args.weights / "detectors" if args.weights else args.data / "blazeface"
    frame = test_frame(args.data) if args.frame == "single_face" else selfie_frame(args.data)
    results = []
    detectors, settings = {}, {}
    for name in args.detectors:
        detector_path, anchor_path = WEIGHTS[name]
        grid = {"opencv": [{"max_side": m} for m in args.opencv_max_side],
                "mtcnn": [{"min_size": m} if m is not None else {} for m in args.mtcnn_min_size]}
        for options in grid.get(name, [{}]):
            try:
                detector = create_detector(
                    name,
                    device=args.device,
                    path_to_detector=detector_path and weights_dir / detector_path,
                    path_to_anchor=anchor_path and weights_dir / anchor_path,
                    **options,
                )
            except (FileNotFoundError, ImportError) as error:
                results.append({"detector": name, "skipped": str(error)})
                continue
            key = f"{name} {options}"
            detectors[key], settings[key] = detector, {"detector": name, **options}
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for key, result in measure(detectors, frame, args.frames).items():
            results.append({**settings[key], "threads": threads, **result})
    report = {
        "benchmark": "detector_speed",
        "frame": "640x480 RGB, " + ("one face (videos/single_face.mp4 frame 0)" if args.frame == "single_face"
                                    else "the group selfie, six faces (eval/images)"),
        "device": args.device,
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": load_before,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
