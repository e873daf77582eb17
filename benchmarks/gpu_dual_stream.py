"""GPU benchmark of the streaming engine on a ViT-L/14 model in fp16: 1 and 4 faces, CUDA streams
on vs off, plus naive clip inference for reference. Needs a CUDA GPU; refuses to run without one.

Per configuration: frames/s, per-frame latency p50/p99 (``engine.process`` wall time, which ends
in the one device->host sync), per-stage latency (CUDA events), peak GPU memory. Faces come from a
fixed-box detector (the detector is benchmarked separately), frames are 640x480. Without
``--weights-dir`` the profile's backbone and head get random weights: same architecture and
FLOPs, meaningless predictions, which is all a speed measurement needs. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/gpu_dual_stream.py
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from engine_common import (
    FixedDetector,
    as_frames,
    astronaut_frames,
    build_benchmark_model,
    environment,
    peak_rss_mb,
    summary_ms,
)

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.types import Box, Detection


def face_boxes(n: int) -> list[Detection]:
    """n face-sized boxes spread over a 640x480 frame (the astronaut's face is the first)."""
    spots = [(250, 60), (40, 260), (420, 260), (40, 40), (470, 40), (250, 300), (150, 150), (380, 150)]
    return [Detection(Box(x, y, 110, 110), 0.99 - 0.01 * i) for i, (x, y) in enumerate(spots[:n])]


def bench_engine(model, faces: int, streams: bool, frames, args, device: str = "cuda") -> dict:
    cfg = EngineConfig(
        window=args.window,
        scene_interval=args.scene_interval,
        device=device,
        precision=args.precision,
        cuda_streams=streams,
        max_faces=max(8, faces),
    )
    engine = PerceptionEngine(model, FixedDetector(face_boxes(faces)), cfg)
    for frame in frames[: args.warmup]:
        engine.process(frame)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    engine.reset_stats()  # stage stats of the timed frames only
    latencies = []
    start = time.perf_counter()
    for frame in frames[args.warmup :]:
        t0 = time.perf_counter()
        estimates = engine.process(frame)
        latencies.append((time.perf_counter() - t0) * 1e3)
        assert len(estimates) == faces
    wall = time.perf_counter() - start
    stats = engine.stats()
    return {
        "faces": faces,
        "cuda_streams": streams,
        "fps": len(latencies) / wall,
        "latency_ms": summary_ms(latencies),
        "stage_latency_ms": {k: {"mean": v["mean"], "p50": v["p50"], "p95": v["p95"]} for k, v in stats["latency_ms"].items()},
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


@torch.inference_mode()
def bench_naive(model, args, device: str = "cuda") -> dict:
    """Re-encode window faces + window scenes per prediction (the paper's clip inference)."""
    w = args.window
    faces = torch.randint(0, 256, (1, w, model.face_size, model.face_size, 3), dtype=torch.uint8, device=device)
    scenes = torch.randint(0, 256, (1, w, model.scene_size, model.scene_size, 3), dtype=torch.uint8, device=device)
    mask = torch.ones(1, w, dtype=torch.bool, device=device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
    latencies = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.naive_predictions):
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            out = model(faces, mask, scenes if model.uses_scene else None)
        torch.softmax(out.logits.float(), -1).cpu()
        if i >= args.warmup:
            latencies.append((time.perf_counter() - t0) * 1e3)
    lat = summary_ms(latencies)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return {"faces": 1, "fps": 1e3 / lat["mean"], "latency_ms": lat, "peak_gpu_memory_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ous-vitl14", help="a ViT-L/14 profile (ous-vitl14 is face + scene)")
    parser.add_argument("--weights-dir", default=None, help="real weights; default: random weights")
    parser.add_argument("--precision", default="fp16", choices=("fp16", "bf16", "fp32"))
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frames", type=int, default=200, help="timed frames per configuration")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--scene-interval", type=int, default=4)
    parser.add_argument("--naive-predictions", type=int, default=30, help="0 skips the naive baseline")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_dual_stream", "error": "needs a CUDA GPU; torch.cuda.is_available() is False"}))
        sys.exit(2)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = build_benchmark_model(args.profile, "cuda", args.weights_dir, random_weights=args.weights_dir is None)
    frames = as_frames(astronaut_frames(args.warmup + args.frames))

    runs = [bench_engine(model, n, streams, frames, args) for n in args.faces for streams in (True, False)]
    out = {
        "benchmark": "gpu_dual_stream",
        "profile": args.profile,
        "model_id": model.model_id,
        "random_weights": args.weights_dir is None,
        "uses_scene": model.uses_scene,
        "precision": args.precision,
        "window": args.window,
        "scene_interval": args.scene_interval,
        "frame": list(frames[0].image.shape),
        "runs": runs,
    }
    if args.naive_predictions:
        out["naive_clip"] = bench_naive(model, args)
        one = [r for r in runs if r["faces"] == 1 and r["cuda_streams"]]
        if one:
            out["speedup_vs_naive_1face"] = one[0]["fps"] / out["naive_clip"]["fps"]
    out["peak_rss_mb"] = peak_rss_mb()
    out["env"] = environment()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
