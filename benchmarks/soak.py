"""Soak: the lite engine behind ``LatestFrameWorker``, fed a 60 frames/s camera of 640x480 frames.

A feeder thread submits real one-face frames (skimage's astronaut drifting on a 640x480 canvas)
on a fixed 60 Hz schedule for ``--minutes``; the worker keeps the newest frame and drops the rest.
Measured per minute: frames submitted / processed / dropped / failed, capture-to-result latency
p50 / p99 (submit to ``on_result``), resident memory (RSS from /proc, not the peak). At the end:
every submitted frame must be processed or dropped (``unaccounted`` = 0, from the worker's own
snapshot, and exactly one on_result / on_error / on_drop callback per frame), RSS growth after the warm-up, last-minute p99 / first-minute p99.
Bookkeeping arrays are allocated up front, so the benchmark's own memory does not grow.

    PYTHONPATH=ros2_ws/src/emotion_perception nice -n 5 .venv/bin/python benchmarks/soak.py [--minutes 10]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from engine_common import astronaut_frames, environment

from emotion_perception.engine import LatestFrameWorker
from emotion_perception.pipeline import create_engine
from emotion_perception.types import Frame

RSS_GROWTH_LIMIT_MB = 20.0
P99_RATIO_LIMIT = 1.5
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_MB


class Camera:
    """Submits frame ``seq`` at ``start + seq / fps``; remembers when each one was submitted."""

    def __init__(self, worker: LatestFrameWorker, images: list[np.ndarray], fps: float, total: int):
        self.worker, self.images, self.period_ns = worker, images, int(1e9 / fps)
        self.per_second = int(round(fps))
        self.submitted_ns = np.zeros(total, np.int64)
        self.replaced = 0  # submits that replaced a pending frame (each one a drop)
        self.total = total
        self.start_ns = 0

    def seq(self, frame: Frame) -> int:
        return (frame.stamp_ns - self.start_ns) // self.period_ns

    def run(self, on_second) -> None:
        """``on_second(n)`` after the frames of the n-th second are submitted."""
        self.start_ns = time.perf_counter_ns()
        for seq in range(self.total):
            due = self.start_ns + seq * self.period_ns
            delay = (due - time.perf_counter_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            self.submitted_ns[seq] = time.perf_counter_ns()
            frame = Frame(self.images[seq % len(self.images)], stamp_ns=due, frame_id="camera")
            self.replaced += not self.worker.submit(frame)
            if (seq + 1) % self.per_second == 0:
                on_second((seq + 1) // self.per_second)


def minute_rows(camera: Camera, latency_ms: np.ndarray, failed: np.ndarray, rss: np.ndarray, per_minute: int) -> list[dict]:
    """Per minute of camera time: counts, latency of the frames submitted in it, RSS at its end."""
    rows = []
    for m in range(math.ceil(camera.total / per_minute)):
        part = slice(m * per_minute, min((m + 1) * per_minute, camera.total))
        done = latency_ms[part][~np.isnan(latency_ms[part])]
        seconds = min(60 * (m + 1), len(rss) - 1)
        processed = int(done.size + failed[part].sum())
        rows.append({
            "minute": m + 1,
            "submitted": part.stop - part.start,
            "processed": processed,
            "dropped": part.stop - part.start - processed,
            "failed": int(failed[part].sum()),
            "latency_p50_ms": round(float(np.percentile(done, 50)), 1) if done.size else None,
            "latency_p99_ms": round(float(np.percentile(done, 99)), 1) if done.size else None,
            "rss_mb": round(float(rss[seconds]), 1),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="RSS growth is counted from this second on (default: 60, or a fifth of a shorter run)")
    parser.add_argument("--profile", default="lite-fer2013")
    args = parser.parse_args()
    duration_s = args.minutes * 60
    warmup_s = args.warmup_s if args.warmup_s is not None else min(60.0, duration_s / 5)
    total = int(round(duration_s * args.fps))
    per_minute = int(round(60 * args.fps))

    engine, choice = create_engine(args.profile, device="cpu")
    images = astronaut_frames(32)
    for image in images[:10]:  # warm-up: first calls allocate and tune kernels
        engine.process(Frame(image, stamp_ns=0, frame_id="camera"))
    engine.reset()
    engine.reset_stats()
    latency_ms = np.full(total, np.nan)
    failed = np.zeros(total, bool)
    delivered = np.zeros(total, np.int16)  # on_result + on_error + on_drop calls per frame: must end 1
    rss = np.zeros(int(duration_s) + 2)
    rss[0] = rss_mb()
    worker: LatestFrameWorker
    camera: Camera

    def on_result(frame: Frame, estimates) -> None:
        seq = camera.seq(frame)
        latency_ms[seq] = (time.perf_counter_ns() - camera.submitted_ns[seq]) / 1e6
        delivered[seq] += 1

    def on_error(frame: Frame, err: Exception) -> None:
        seq = camera.seq(frame)
        failed[seq] = True
        delivered[seq] += 1

    def on_drop(frame: Frame) -> None:
        delivered[camera.seq(frame)] += 1

    def on_second(second: int) -> None:
        rss[second] = rss_mb()

    worker = LatestFrameWorker(engine, on_result, on_error, name="soak-engine", on_drop=on_drop)
    camera = Camera(worker, images, args.fps, total)
    started = time.perf_counter()
    camera.run(on_second)
    feed_s = time.perf_counter() - started
    idle = worker.wait_idle(60)
    counts = worker.counts()
    worker.close()
    seconds = int(duration_s)
    rss[seconds + 1] = rss_mb()

    rows = minute_rows(camera, latency_ms, failed, rss, per_minute)
    base = rss[int(warmup_s)]
    after = rss[int(warmup_s): seconds + 2]
    first_p99, last_p99 = rows[0]["latency_p99_ms"], rows[-1]["latency_p99_ms"]
    # Cross-check from outside the worker: each frame got exactly one callback.
    callbacks_unaccounted = int(np.sum(delivered == 0))
    unaccounted = counts.submitted - counts.processed - counts.dropped
    out = {
        "benchmark": "soak",
        "profile": choice.profile.name,
        "detector": type(engine.detector).__name__,
        "frame": list(images[0].shape),
        "camera_fps": args.fps,
        "minutes": args.minutes,
        "feed_wall_s": round(feed_s, 1),
        "worker_idle_at_end": idle,
        "frames": {
            "submitted": counts.submitted,
            "processed": counts.processed,
            "dropped": counts.dropped,
            "failed": counts.failed,
            "unaccounted": unaccounted,
            "submit_returned_false": camera.replaced,
            "delivered_twice": int(np.sum(delivered > 1)),
            "callbacks_unaccounted": callbacks_unaccounted,
            "engine_dropped": engine.stats()["dropped"],
        },
        "per_minute": rows,
        "rss_mb": {
            "start": round(float(rss[0]), 1),
            "after_warmup": round(float(base), 1),
            "warmup_s": warmup_s,
            "end": round(float(rss[seconds + 1]), 1),
            "max_after_warmup": round(float(after.max()), 1),
            "growth_after_warmup": round(float(rss[seconds + 1] - base), 1),
            "max_growth_after_warmup": round(float(after.max() - base), 1),
        },
        "p99_last_over_first": round(last_p99 / first_p99, 2) if first_p99 and last_p99 else None,
        "targets": {
            "rss_growth_le_20mb": bool(after.max() - base <= RSS_GROWTH_LIMIT_MB),
            "p99_last_within_1_5x_first": bool(first_p99 and last_p99 and last_p99 <= P99_RATIO_LIMIT * first_p99),
            "zero_unaccounted": unaccounted == 0 and callbacks_unaccounted == 0 and not np.any(delivered > 1),
        },
        "env": environment(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
