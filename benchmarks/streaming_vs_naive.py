"""Streaming engine vs naive clip inference, same model, same frames, CPU.

Naive (what the paper's code does per prediction): re-encode the last ``window`` face crops AND
``window`` scene frames, then run the head. Streaming: encode the new face once, the scene every
``scene_interval`` frames, run the head on cached windows. Both use a fixed detector box (found by
the real OpenCV detector on the first frame) so detection cost, identical in both, is left out.
Only predictions with a full window are timed. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/streaming_vs_naive.py
"""
from __future__ import annotations

import argparse
import json
import time
from collections import deque

import cv2
import numpy as np
import torch

from engine_common import FixedDetector, as_frames, astronaut_frames, environment, summary_ms

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.faces import create_detector, crop_face
from emotion_perception.models.registry import build_model


def resized(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def run_streaming(model, detections, frames, cfg) -> list[float]:
    engine = PerceptionEngine(model, FixedDetector(detections), cfg)
    times = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        (est,) = engine.process(frame)
        if i + 1 >= cfg.window:
            times.append((time.perf_counter() - t0) * 1e3)
            assert est.frames_used == cfg.window
    return times


@torch.inference_mode()
def run_naive(model, box, frames, window: int, margin: float) -> list[float]:
    faces, scenes = deque(maxlen=window), deque(maxlen=window)
    mask = torch.ones(1, window, dtype=torch.bool)
    times = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        faces.append(resized(crop_face(frame.image, box, margin), model.face_size))
        scenes.append(resized(frame.image, model.scene_size))
        if len(faces) < window:
            continue
        face_clip = torch.from_numpy(np.stack(faces))[None]
        scene_clip = torch.from_numpy(np.stack(scenes))[None] if model.uses_scene else None
        out = model(face_clip, mask, scene_clip)  # encodes window faces + window scenes
        torch.softmax(out.logits.float(), -1).numpy()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny-test-zeroshot")
    parser.add_argument("--predictions", type=int, default=40, help="timed predictions (full windows)")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--scene-interval", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(args.profile, "cpu").eval()
    frames = as_frames(astronaut_frames(args.window - 1 + args.predictions))
    detections = create_detector("opencv").detect(frames[0].image)
    if len(detections) != 1:
        raise SystemExit(f"expected one face in the benchmark frame, the detector found {len(detections)}")
    cfg = EngineConfig(window=args.window, scene_interval=args.scene_interval, device="cpu")

    # warm up both paths once (first-call allocations, oneDNN kernel selection)
    run_streaming(model, detections, frames[: args.window + 2], cfg)
    run_naive(model, detections[0].box, frames[: args.window + 2], args.window, cfg.face_margin)

    streaming = summary_ms(run_streaming(model, detections, frames, cfg))
    naive = summary_ms(run_naive(model, detections[0].box, frames, args.window, cfg.face_margin))
    scene_per_pred = 1.0 / args.scene_interval if model.uses_scene else 0.0
    print(
        json.dumps(
            {
                "benchmark": "streaming_vs_naive",
                "profile": args.profile,
                "model_id": model.model_id,
                "uses_scene": model.uses_scene,
                "face_size": model.face_size,
                "window": args.window,
                "scene_interval": args.scene_interval,
                "frame": list(frames[0].image.shape),
                "image_encodes_per_prediction": {
                    "naive": args.window * (2 if model.uses_scene else 1),
                    "streaming": 1 + scene_per_pred,
                },
                "naive_ms": naive,
                "streaming_ms": streaming,
                "speedup_mean": naive["mean"] / streaming["mean"],
                "speedup_p50": naive["p50"] / streaming["p50"],
                "target_speedup": 10.0,
                "env": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
