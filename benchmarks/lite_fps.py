"""End-to-end CPU throughput of the lite profile: detector + tracker + crops + model, 640x480.

Two measurements on real one-face frames (skimage's astronaut drifting on a 640x480 canvas, or
the shared single_face.mp4 resized to 640x480):
  1. offline: ``engine.process`` back to back -> frames/s and per-stage latency (p50/p95), so the
     detector's share can be told apart from the engine's and the model's;
  2. live: a simulated 30 fps camera feeding ``LatestFrameWorker`` -> processed vs dropped.
Prints one JSON object, including peak RSS (resource.getrusage).

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/lite_fps.py
"""
from __future__ import annotations

import argparse
import json
import threading
import time

import torch

from engine_common import as_frames, astronaut_frames, environment, peak_rss_mb, summary_ms, video_frames

from emotion_perception.engine import LatestFrameWorker
from emotion_perception.pipeline import create_engine


def offline(engine, frames) -> dict:
    faces = 0
    t0 = time.perf_counter()
    for frame in frames:
        faces += len(engine.process(frame))
    wall = time.perf_counter() - t0
    return {"frames": len(frames), "faces_found": faces, "wall_s": wall, "fps": len(frames) / wall}


def live(engine, frames, camera_fps: float) -> dict:
    latencies, done = [], threading.Event()

    def on_result(frame, estimates):
        latencies.append((time.perf_counter_ns() - frame.stamp_ns) / 1e6)

    worker = LatestFrameWorker(engine, on_result, lambda f, e: done.set())
    period = 1.0 / camera_fps
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        time.sleep(max(0.0, start + i * period - time.perf_counter()))
        worker.submit(type(frame)(frame.image, stamp_ns=time.perf_counter_ns(), source=frame.source))
    worker.wait_idle(30)
    worker.close()
    return {
        "camera_fps": camera_fps,
        "submitted": len(frames),
        "processed": worker.processed,
        "dropped": worker.dropped,
        "failed": worker.failed,
        "output_fps": worker.processed / (time.perf_counter() - start),
        "capture_to_result_ms": summary_ms(latencies) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="lite-fer2013")
    parser.add_argument("--detector", default=None, help="detector name (default: the profile's)")
    parser.add_argument("--source", choices=("astronaut", "video"), default="astronaut")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--camera-fps", type=float, default=30.0, help="live run rate; 0 skips the live run")
    parser.add_argument("--detect-max-side", type=int, default=0, help="EngineConfig.detect_max_side")
    parser.add_argument("--weights-dir", default=None,
                        help="weights folder as models/fetch leaves it (default: $EMOTION_PERCEPTION_WEIGHTS or ~/.cache/...)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images = astronaut_frames(args.frames) if args.source == "astronaut" else video_frames(args.frames)
    frames = as_frames(images)
    engine, choice = create_engine(
        args.profile, device="cpu", detector=args.detector, weights_dir=args.weights_dir,
        detect_max_side=args.detect_max_side,
    )
    for frame in frames[:10]:  # warm-up
        engine.process(frame)
    engine.reset()

    result = offline(engine, frames)
    stats = engine.stats()
    out = {
        "benchmark": "lite_fps",
        "profile": choice.profile.name,
        "profile_reason": choice.reason,
        "detector": getattr(engine.detector, "name", type(engine.detector).__name__),
        "source": args.source,
        "frame": list(frames[0].image.shape),
        "offline": result,
        "target_fps": 30.0,
        "stage_latency_ms": stats["latency_ms"],
        "config": stats["config"],
    }
    if args.camera_fps > 0:
        engine.reset()
        out["live"] = live(engine, frames, args.camera_fps)
    out["peak_rss_mb"] = peak_rss_mb()
    out["env"] = environment()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
