"""End-to-end CPU throughput of the lite profile: detector + tracker + crops + model, 640x480.

Two measurements on real one-face frames (skimage's astronaut drifting on a 640x480 canvas, or
the shared single_face.mp4 resized to 640x480):
  1. offline: ``engine.process`` back to back -> frames/s, per-frame latency (p50/p95) and
     per-stage latency, so the detector's share can be told apart from the engine's and the model's;
  2. live: a simulated 30 fps camera feeding ``LatestFrameWorker`` -> processed vs dropped.
With ``--load N`` both run twice in one process: on the quiet machine, then beside N busy-looping
processes (a robot's cores are shared with other nodes), so the two are measured the same way.
Thread counts are the engine's default for the profile unless ``--threads`` says otherwise.
Prints one JSON object, including peak RSS (resource.getrusage).

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/lite_fps.py --load 2
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time

from engine_common import as_frames, astronaut_frames, environment, peak_rss_mb, summary_ms, video_frames

from emotion_perception.cli import parse_settings
from emotion_perception.engine import LatestFrameWorker
from emotion_perception.pipeline import create_engine


def offline(engine, frames) -> dict:
    """Back to back; latency also split into frames searched whole for faces and frames whose
    faces were followed from the last search (engine ``detect_interval_s``)."""
    faces = 0
    latencies, by_kind = [], {"searched": [], "followed": []}
    t0 = time.perf_counter()
    for frame in frames:
        searches = engine.stats()["searches"]
        start = time.perf_counter()
        faces += len(engine.process(frame))
        latencies.append((time.perf_counter() - start) * 1e3)
        by_kind["searched" if engine.stats()["searches"] > searches else "followed"].append(latencies[-1])
    wall = time.perf_counter() - t0
    return {"frames": len(frames), "faces_found": faces, "wall_s": wall, "fps": len(frames) / wall,
            "frame_latency_ms": summary_ms(latencies),
            **{f"{kind}_frame_latency_ms": summary_ms(values) for kind, values in by_kind.items() if values}}


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes spinning a core each (what other nodes do to a robot's CPU) while inside."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0.0)  # let the scheduler spread them
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def measure(engine, frames, camera_fps: float) -> dict:
    """Offline (and live, unless camera_fps is 0) runs of ``frames`` from a fresh engine state."""
    engine.reset()
    engine.reset_stats()
    out = {"offline": offline(engine, frames), "stage_latency_ms": engine.stats()["latency_ms"]}
    if camera_fps > 0:
        engine.reset()
        out["live"] = live(engine, frames, camera_fps)
    return out


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
    parser.add_argument("--detect-interval", type=float, default=None,
                        help="EngineConfig.detect_interval_s: whole-frame search period, s (default: the profile's)")
    parser.add_argument("--weights-dir", default=None,
                        help="weights folder as models/fetch leaves it (default: $EMOTION_PERCEPTION_WEIGHTS or ~/.cache/...)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and OpenCV threads (default: the profile's for CPU, as the CLI and node)")
    parser.add_argument("--load", type=int, default=0,
                        help="also measure beside N busy-looping processes (0: quiet machine only)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE",
                        help="EngineConfig override, e.g. face_align=false (repeatable)")
    args = parser.parse_args()

    images = astronaut_frames(args.frames) if args.source == "astronaut" else video_frames(args.frames)
    frames = as_frames(images)
    engine, choice = create_engine(
        args.profile, device="cpu", detector=args.detector, weights_dir=args.weights_dir,
        detect_max_side=args.detect_max_side, threads=args.threads,
        **({} if args.detect_interval is None else {"detect_interval_s": args.detect_interval}),
        **parse_settings(args.settings),
    )
    for frame in frames[:10]:  # warm-up
        engine.process(frame)

    out = {
        "benchmark": "lite_fps",
        "profile": choice.profile.name,
        "profile_reason": choice.reason,
        "detector": getattr(engine.detector, "name", type(engine.detector).__name__),
        "source": args.source,
        "frame": list(frames[0].image.shape),
        "target": {"fps": 30.0, "frame_latency_p95_ms": 60.0},
        "threads": engine.threads,
        "config": engine.stats()["config"],
        "env": environment(),  # before the runs: loadavg says how busy the machine already was
        "quiet": measure(engine, frames, args.camera_fps),
    }
    if args.load:
        with busy_processes(args.load):
            out["loaded"] = {"busy_processes": args.load, **measure(engine, frames, args.camera_fps)}
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
