"""Groups and distance: the lite profile end to end on 640x480 frames of 1, 2, 4 and 6 real faces.

``lite_fps.py`` measures one face; a robot facing a family or a classroom sees several, some of
them small (far from the camera). Each scene of ``engine_common.SCENES`` (the astronaut, the
two-person intel clip, London portraits tiled 2x2 and 3x2, the dev set's group selfie) runs
back to back through one engine: frames/s, latency per frame and per face (a frame's latency
over the faces it reported), per-stage latency, and per frame the faces found and the phantom
faces (a reported box that holds no labelled face's centre, or whose centre no labelled box
holds, as ``eval-set`` matches photos; in the video, reports beyond its two people). The first
frames of a scene report nothing until a face has been seen ``min_hits`` times; ``warmup``
frames are run before timing. With ``--load N`` every scene runs again beside N busy-looping
processes, in the same process. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/group_fps.py --load 2
    ... benchmarks/group_fps.py --scenes selfie --weights-dir /tmp/w   # with fetched BlazeFace files
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from engine_common import SCENES, as_frames, environment, peak_rss_mb, scene, summary_ms
from lite_fps import busy_processes

from emotion_perception.evaluation.evalset import EvalItem, FaceLabel, match_faces
from emotion_perception.pipeline import create_engine


def counted(item: EvalItem | None, faces: int, boxes: list, width: int) -> tuple[int, int]:
    """(labelled faces found, phantom faces) among one frame's reported ``boxes``."""
    if item is None:
        return min(len(boxes), faces), max(0, len(boxes) - faces)
    matched, phantoms = match_faces(item, item.labels[0], boxes, width)
    return len(matched), len(phantoms)


def run_scene(engine, frames, item: EvalItem | None, faces: int, warmup: int) -> dict:
    """``frames`` through a freshly reset engine: speed, faces found and phantoms per frame."""
    engine.reset()
    for frame in frames[:warmup]:
        engine.process(frame)
    engine.reset_stats()
    latencies, per_face, found, phantoms = [], [], [], []
    t0 = time.perf_counter()
    for frame in frames[warmup:]:
        start = time.perf_counter()
        estimates = engine.process(frame)
        latencies.append((time.perf_counter() - start) * 1e3)
        if estimates:
            per_face.append(latencies[-1] / len(estimates))
        hit, phantom = counted(item, faces, [e.box for e in estimates], frame.image.shape[1])
        found.append(hit)
        phantoms.append(phantom)
    wall = time.perf_counter() - t0
    stats = engine.stats()
    return {
        "frames": len(latencies),
        "fps": len(latencies) / wall,
        "frame_latency_ms": summary_ms(latencies),
        "per_face_latency_ms": summary_ms(per_face) if per_face else None,
        "faces_found_per_frame": {"mean": sum(found) / len(found), "min": min(found), "max": max(found),
                                  "frames_with_all": sum(f == faces for f in found),
                                  "histogram": dict(sorted(Counter(found).items()))},
        "phantom_faces": sum(phantoms),
        "frames_with_phantoms": sum(p > 0 for p in phantoms),
        "searched_frames": stats["searches"],
        "stage_latency_ms": stats["latency_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=sorted(SCENES), default=list(SCENES))
    parser.add_argument("--profile", default="lite-fer2013")
    parser.add_argument("--detector", default=None, help="detector name (default: the profile's)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="weights folder as models/fetch leaves it (e.g. detectors/blazefaceback.pth)")
    parser.add_argument("--frames", type=int, default=200, help="timed frames per scene and phase")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: the profile's)")
    parser.add_argument("--load", type=int, default=0, help="also run beside N busy-looping processes")
    args = parser.parse_args()

    engine, choice = create_engine(args.profile, device="cpu", detector=args.detector,
                                   weights_dir=args.weights_dir, threads=args.threads)
    scenes = []
    for name in args.scenes:
        s = scene(name, args.warmup + args.frames)
        item = None if s.boxes is None else EvalItem(
            name, "image", Path(name), {0: [FaceLabel(str(k), 0, True, b) for k, b in enumerate(s.boxes)]},
            tuple(str(k) for k in range(len(s.boxes))))
        scenes.append((s, as_frames(s.images), item))
    out = {
        "benchmark": "group_fps",
        "profile": choice.profile.name,
        "detector": getattr(engine.detector, "name", type(engine.detector).__name__),
        "redetector": getattr(engine.redetector, "name", None),
        "detector_min_size": getattr(engine.detector, "min_size", None),
        "frame": list(scenes[0][1][0].image.shape),
        "threads": engine.threads,
        "config": engine.stats()["config"],
        "env": environment(),  # before the runs: loadavg says how busy the machine already was
        "scenes": {s.name: {"faces": s.faces, "what": SCENES[s.name]} for s, _, _ in scenes},
    }
    phases = [("quiet", 0)] + ([("loaded", args.load)] if args.load else [])
    for phase, busy in phases:
        with busy_processes(busy):
            out[phase] = {s.name: run_scene(engine, frames, item, s.faces, args.warmup) for s, frames, item in scenes}
    out["loadavg_after"] = environment()["loadavg_1min"]
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
