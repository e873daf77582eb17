"""Streaming engine vs naive clip inference, same model, same frames, CPU.

Naive (what the paper's code does per prediction): re-encode the last ``window`` face crops AND
``window`` scene frames, then run the head. Streaming: encode the new face once, the scene every
``scene_interval`` frames, run the head on cached windows. Both use a fixed detector box (found by
the real OpenCV detector on the first frame), so detection, identical in both, is left out. The
two paths run interleaved frame by frame, so load from other processes hits both alike; only
predictions with a full window are timed. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/streaming_vs_naive.py
    ... --profile zeroshot-vitb16 --random-weights   # a real-size backbone (FLOP-bound)
"""
from __future__ import annotations

import argparse
import json
import time
from collections import deque

import cv2
import numpy as np
import torch

from engine_common import FixedDetector, as_frames, astronaut_frames, build_benchmark_model, environment, summary_ms

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.faces import create_detector, crop_face


def resized(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


class NaiveClip:
    """Keeps the last ``window`` raw crops and scenes; every prediction encodes all of them."""

    def __init__(self, model, box, window: int, margin: float):
        self.model, self.box, self.margin = model, box, margin
        self.faces, self.scenes = deque(maxlen=window), deque(maxlen=window)
        self.mask = torch.ones(1, window, dtype=torch.bool)

    @torch.inference_mode()
    def predict(self, frame) -> np.ndarray | None:
        self.faces.append(resized(crop_face(frame.image, self.box, self.margin), self.model.face_size))
        self.scenes.append(resized(frame.image, self.model.scene_size))
        if len(self.faces) < self.faces.maxlen:
            return None
        face_clip = torch.from_numpy(np.stack(self.faces))[None]
        scene_clip = torch.from_numpy(np.stack(self.scenes))[None] if self.model.uses_scene else None
        out = self.model(face_clip, self.mask, scene_clip)  # window faces + window scenes encoded
        return torch.softmax(out.logits.float(), -1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny-test-zeroshot")
    parser.add_argument("--random-weights", action="store_true", help="leave out the profile's weight files")
    parser.add_argument("--predictions", type=int, default=40, help="timed predictions (full windows)")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--scene-interval", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_benchmark_model(args.profile, "cpu", random_weights=args.random_weights)
    warmup = args.window + 2
    frames = as_frames(astronaut_frames(warmup + args.window - 1 + args.predictions))
    detections = create_detector("opencv").detect(frames[0].image)
    if len(detections) != 1:
        raise SystemExit(f"expected one face in the benchmark frame, the detector found {len(detections)}")
    cfg = EngineConfig(window=args.window, scene_interval=args.scene_interval, device="cpu")

    engine = PerceptionEngine(model, FixedDetector(detections), cfg)
    naive = NaiveClip(model, detections[0].box, args.window, cfg.face_margin)
    for frame in frames[:warmup]:  # first-call allocations, oneDNN kernel selection
        engine.process(frame)
        naive.predict(frame)
    engine.reset()
    engine.reset_stats()
    naive = NaiveClip(model, detections[0].box, args.window, cfg.face_margin)

    streaming_ms, naive_ms = [], []
    for i, frame in enumerate(frames[warmup:]):
        t0 = time.perf_counter()
        (est,) = engine.process(frame)
        t1 = time.perf_counter()
        probs = naive.predict(frame)
        t2 = time.perf_counter()
        if probs is not None:
            assert est.frames_used == args.window
            streaming_ms.append((t1 - t0) * 1e3)
            naive_ms.append((t2 - t1) * 1e3)

    streaming, naive_sum = summary_ms(streaming_ms), summary_ms(naive_ms)
    scene_per_pred = 1.0 / args.scene_interval if model.uses_scene else 0.0
    stages = engine.stats()["latency_ms"]
    print(
        json.dumps(
            {
                "benchmark": "streaming_vs_naive",
                "profile": args.profile,
                "random_weights": args.random_weights,
                "model_id": model.model_id,
                "uses_scene": model.uses_scene,
                "face_size": model.face_size,
                "scene_size": model.scene_size,
                "window": args.window,
                "scene_interval": args.scene_interval,
                "frame": list(frames[0].image.shape),
                "image_encodes_per_prediction": {
                    "naive": args.window * (2 if model.uses_scene else 1),
                    "streaming": 1 + scene_per_pred,
                },
                "naive_ms": naive_sum,
                "streaming_ms": streaming,
                "streaming_stage_p50_ms": {k: v["p50"] for k, v in stages.items()},
                "speedup_mean": naive_sum["mean"] / streaming["mean"],
                "speedup_p50": naive_sum["p50"] / streaming["p50"],
                "target_speedup": 10.0,
                "env": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
