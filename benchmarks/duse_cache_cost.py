"""What DuSE's window-dependent prompts cost in streaming, against OUS on cached features.

One streaming step = a new frame arrives for one face track and a prediction over the last
``window`` frames is made:
- OUS: encode the new face (and, every ``scene_interval`` frames, the scene — amortised here),
  then ``forward_window`` on the cached per-frame features;
- DuSE: encode the new face (its cacheable part: the tokens before ViT block 0), then
  ``forward_window``, which runs every ViT block on every frame of the window because the
  frame-position prompt changes as the window slides.
By default it runs the tiny random-weight profiles on CPU (the shape of the cost, not robot
numbers); ``--ous ous-vitl14 --duse duse-vitl14 --random-backbone --device cuda`` times the real
architectures (random weights: the speed does not depend on them, untrained heads). It adds the
ViT passes per step and the analytic share of the patch embedding — the only part DuSE can
cache — in ViT-L/14's FLOPs. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/duse_cache_cost.py
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

import torch

from emotion_perception.models import duse as duse_module
from emotion_perception.models import ous as ous_module
from emotion_perception.models.registry import get_profile


def timed(fn, iters: int, device: str) -> dict:
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(iters):
        w, c = time.perf_counter(), time.process_time()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"wall_ms": round(1e3 * statistics.median(wall), 3), "cpu_ms": round(1e3 * statistics.median(cpu), 3)}


def vit_l14_patch_embed_share() -> float:
    """MACs of the patch convolution / MACs of the whole ViT-L/14 image tower at 224 px."""
    width, layers, patches, patch = 1024, 24, 256, 14
    tokens = patches + 1
    conv = patches * width * 3 * patch * patch
    block = tokens * 12 * width * width + 2 * tokens * tokens * width  # qkv/out/MLP + attention
    return conv / (conv + layers * block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--scene-interval", type=int, default=4)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ous", default="tiny-test-ous", help="OUS profile")
    parser.add_argument("--duse", default="tiny-test-duse", help="DuSE profile")
    parser.add_argument("--random-backbone", action="store_true", help="ignore the profiles' CLIP weight files")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t, k, dev = args.window, args.scene_interval, args.device

    def load(module, name):
        profile = get_profile(name)
        if args.random_backbone:
            profile = dataclasses.replace(profile, backbone={"model": profile.backbone["model"]})
        return module.build(profile, device=dev, load_head=False).eval()

    ous = load(ous_module, args.ous)
    duse = load(duse_module, args.duse)
    size = ous.face_size
    frame = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8, device=dev)
    mask = torch.ones(1, t, dtype=torch.bool, device=dev)
    with torch.inference_mode():
        face_win = ous.encode_faces(frame).expand(1, t, -1).clone()
        scene_win = ous.encode_scenes(frame).expand(1, t, -1).clone()
        tokens_win = duse.encode_faces(frame).expand(1, t, -1).clone()
        clip = frame.expand(t, -1, -1, -1).unsqueeze(0)

        ous_face = timed(lambda: ous.encode_faces(frame), args.iters, dev)
        ous_scene = timed(lambda: ous.encode_scenes(frame), args.iters, dev)
        ous_window = timed(lambda: ous.forward_window(face_win, mask, scene_win, mask), args.iters, dev)
        ous_naive = timed(lambda: ous(clip, mask, clip), args.iters, dev)
        duse_face = timed(lambda: duse.encode_faces(frame), args.iters, dev)
        duse_window = timed(lambda: duse.forward_window(tokens_win, mask), args.iters, dev)
        duse_naive = timed(lambda: duse(clip, mask), args.iters, dev)

    def step(*parts_and_weights):
        return {key: round(sum(p[key] * w for p, w in parts_and_weights), 3) for key in ("wall_ms", "cpu_ms")}

    ous_step = step((ous_face, 1), (ous_scene, 1 / k), (ous_window, 1))
    duse_step = step((duse_face, 1), (duse_window, 1))
    result = {
        "device": dev,
        "threads": args.threads,
        "profiles": [args.ous, args.duse],
        "random_backbone": args.random_backbone,
        "window": t,
        "scene_interval": k,
        "ous": {
            "encode_face": ous_face, "encode_scene": ous_scene, "forward_window": ous_window,
            "streaming_step": ous_step, "naive_clip_step": ous_naive,
            "cached_floats_per_frame": {"face": ous.face_dim, "scene": ous.scene_dim},
        },
        "duse": {
            "encode_face_cacheable_part": duse_face, "forward_window_reencodes_window": duse_window,
            "streaming_step": duse_step, "naive_clip_step": duse_naive,
            "cached_floats_per_frame": {"face": duse.face_dim},
        },
        "duse_over_ous_streaming_cpu": round(duse_step["cpu_ms"] / ous_step["cpu_ms"], 2),
        "duse_streaming_over_naive_cpu": round(duse_step["cpu_ms"] / duse_naive["cpu_ms"], 2),
        "vit_passes_per_step": {"ous": 1 + 1 / k, "duse": t},
        "vit_l14_patch_embed_flop_share": round(vit_l14_patch_embed_share(), 5),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
