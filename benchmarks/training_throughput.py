"""OUS training throughput: cached frozen features vs re-encoding pixels, and DDP over processes.

(1) One run trains the same OUS model (paper head: 12 TFE blocks, 64 prompt tokens; backbone
``--backbone``, random weights, same FLOPs as the real one) on the same fake clips, written as JPEG
frames in the FERV39k layout (face + scene streams): an epoch from pixels (every clip's frames
decoded and encoded by the frozen ViT, as ``emotion-train`` without a cache does) against epochs
from the feature cache (``emotion-train cache``). The ratio of epoch times is measured in one run.
(2) Head-only training on that cache under ``torchrun`` (gloo on CPU, NCCL on CUDA): samples/s
with ``--ddp-procs`` processes vs 1 process, for the same global batch and for the same batch per
process. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/training_throughput.py
    ... --device cuda --backbone ViT-L-14-quickgelu --ddp-procs <GPUs>   # on a CUDA machine
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from engine_common import environment

from emotion_perception.models import ous
from emotion_perception.models.registry import get_profile
from emotion_perception.training import distributed
from emotion_perception.training.augment import AugmentConfig
from emotion_perception.training.datasets import ClipDataset, clip_loader, read_ferv39k
from emotion_perception.training.feature_cache import (
    CachedClipDataset, FeatureCache, build_cache, cached_flips, dataset_pin,
)
from emotion_perception.training.jobs import make_loader
from emotion_perception.training.trainer import Trainer, make_criterion, trainable_parameters

CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


def build_model(backbone: str, device: torch.device, seed: int = 0):
    """OUS with the paper's head (ous-vitl14's settings) on a random-weight ``backbone``."""
    profile = get_profile("ous-vitl14")
    head = {k: v for k, v in profile.head.items() if k not in ("checkpoint", "sha256")}
    profile = dataclasses.replace(profile, backbone={"model": backbone}, head=head)
    torch.manual_seed(seed)  # every process builds the same random backbone (the cache checks it)
    return ous.build(profile, None, device, load_head=False)


def write_clips(root: Path, clips: int, frames: int, size: int) -> None:
    """``clips`` clips of ``frames`` noisy JPEG frames, face and scene streams, one class each."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(clips):
        rel = f"Scene/{CLASSES[i % 7]}/clip{i:04d}"
        for stream in ("2_ClipsforFaceCrop", "3_ClipsforScenImages"):
            folder = root / stream / rel
            folder.mkdir(parents=True)
            for k in range(frames):
                cv2.imwrite(str(folder / f"{k}.jpg"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        rows.append(f"{rel} {CLASSES[i % 7]}\n")
    (root / "4_setups" / "All_scenes").mkdir(parents=True)
    (root / "4_setups" / "All_scenes" / "train_All.csv").write_text("".join(rows))


def timed_epochs(trainer: Trainer, loader, epochs: int) -> list[float]:
    out = []
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        trainer.train_epoch(loader)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


def new_trainer(model, device, features: bool) -> Trainer:
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=1e-4)
    return Trainer(model, optimizer, criterion=make_criterion(model), device=device, amp=device.type == "cuda",
                   progress=False, features=features)


def cache_vs_pixels(args, model, root: Path, cache_dir: Path, device: torch.device) -> dict:
    records = read_ferv39k(root, "train")
    pixels = ClipDataset(records, num_frames=args.frames, face_size=model.face_size, scene_size=model.scene_size,
                         train=True, augment=AugmentConfig(flip=args.flip))
    loader = clip_loader(pixels, args.batch, 0, shuffle=True, pin_memory=device.type == "cuda")
    trainer = new_trainer(model, device, features=False)
    trainer.train_epoch(clip_loader(ClipDataset(records[:1], num_frames=2, face_size=model.face_size,
                                                scene_size=model.scene_size), 1, 0, shuffle=False))  # warm-up
    pixel_s = timed_epochs(trainer, loader, args.pixel_epochs)

    start = time.perf_counter()
    build_cache(cache_dir, model, records, [dataset_pin("ferv39k", root, {})], flips=cached_flips(pixels.augment),
                device=device, amp=device.type == "cuda", progress=False)
    cache_s = time.perf_counter() - start
    cached = CachedClipDataset(records, FeatureCache(cache_dir), num_frames=args.frames, with_scene=True, train=True,
                               augment=AugmentConfig(flip=args.flip))
    trainer = new_trainer(model, device, features=True)
    cached_s = timed_epochs(trainer, clip_loader(cached, args.batch, 0, shuffle=True), args.cached_epochs + 1)[1:]
    pixel, cached_epoch = statistics.median(pixel_s), statistics.median(cached_s)
    return {
        "clips": len(records), "frames": args.frames, "batch": args.batch,
        "pixel_epoch_s": pixel_s, "cached_epoch_s": cached_s, "cache_build_s": cache_s,
        "cache_mb": sum(p.stat().st_size for p in cache_dir.iterdir()) / 1e6,
        "speedup_per_epoch": pixel / cached_epoch,
        "target": ">= 50x",
    }


def ddp_worker(args) -> None:
    """One process of a torchrun world: head-only epochs on the cache; rank 0 prints samples/s."""
    torch.set_num_threads(args.threads)
    world, device = distributed.setup(torch.device(args.device))
    model = build_model(args.backbone, device)
    records = read_ferv39k(args.root, "train") * args.repeat
    cached = CachedClipDataset(records, FeatureCache(args.cache), num_frames=args.frames, with_scene=True,
                               train=True, augment=AugmentConfig(flip=args.flip))
    loader = make_loader(cached, args.rank_batch, 0, shuffle=True, device=device, world=world, seed=0)
    trainer = new_trainer(model, device, features=True)
    seconds = timed_epochs(trainer, loader, args.ddp_epochs + 1)[1:]  # the first epoch warms up
    if world.main:
        print(json.dumps({"samples_per_s": len(records) / statistics.median(seconds), "epoch_s": seconds}))
    distributed.shutdown()


def run_ddp(args, procs: int, rank_batch: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_addr",
           "127.0.0.1", "--master_port", str(29500 + os.getpid() % 1000 + procs), __file__, "--ddp-worker",
           "--root", str(args.root), "--cache", str(args.cache), "--backbone", args.backbone,
           "--frames", str(args.frames), "--rank-batch", str(rank_batch), "--threads", str(threads),
           "--device", args.device, "--repeat", str(args.repeat), "--ddp-epochs", str(args.ddp_epochs),
           "--flip", str(args.flip)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode:
        raise SystemExit(f"torchrun failed:\n{proc.stderr[-3000:]}")
    return {"procs": procs, "batch_per_proc": rank_batch, "threads_per_proc": threads,
            **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backbone", default="ViT-B-16-quickgelu", help="open_clip model name (random weights)")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (all are sampled)")
    parser.add_argument("--batch", type=int, default=16, help="global batch (the paper's 16)")
    parser.add_argument("--pixel-epochs", type=int, default=1)
    parser.add_argument("--cached-epochs", type=int, default=5)
    parser.add_argument("--ddp-procs", type=int, default=2)
    parser.add_argument("--ddp-epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=4, help="DDP part: the cached clips repeated this often")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (1: OpenMP spin-waits of a loaded machine stay out of it)")
    parser.add_argument("--flip", type=float, default=0.0, help="augment.flip (> 0 caches both flip states)")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--root", "--cache"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--rank-batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        return ddp_worker(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "--device cuda but CUDA is not available"}))
        raise SystemExit(2)
    threads = args.threads
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        args.root, args.cache = Path(tmp) / "clips", Path(tmp) / "cache"
        model = build_model(args.backbone, device)
        write_clips(args.root, args.clips, args.frames, model.face_size)
        result = {"environment": environment(), "backbone": args.backbone, "device": args.device,
                  "cache_vs_pixels": cache_vs_pixels(args, model, args.root, args.cache, device)}
        del model
        if args.ddp_procs > 1:
            one = run_ddp(args, 1, args.batch, threads)
            same_global = run_ddp(args, args.ddp_procs, args.batch // args.ddp_procs, threads)
            same_per_proc = run_ddp(args, args.ddp_procs, args.batch, threads)
            result["ddp_head_only"] = {
                "one_process": one, "same_global_batch": same_global, "same_batch_per_process": same_per_proc,
                "speedup_same_global_batch": same_global["samples_per_s"] / one["samples_per_s"],
                "speedup_same_batch_per_process": same_per_proc["samples_per_s"] / one["samples_per_s"],
                "target": ">= 1.6x",
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
