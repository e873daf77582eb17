"""Fuzz the ROS-free readers with Hypothesis and count the outcomes.

Targets (strategies and checks in tests/fuzz_cases.py, which CI also runs with a few examples):
raw sensor_msgs images of every encoding, compressed images, label files, damaged bags. Every
input must convert (with a well-formed result) or raise the documented error (ImageError,
LabelsError, BagError); anything else is counted as unexpected, with its type, message and one
input, and the run goes on. Prints one JSON object; exit code 1 if anything was unexpected.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/fuzz.py [--scale 1.0]

OpenCV and libjpeg print warnings for every broken image to the process's stderr; they are
silenced during the run (``--native-stderr`` keeps them).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from hypothesis import given

from engine_common import REPO, environment, peak_rss_mb

sys.path.insert(0, str(REPO / "tests"))
import fuzz_cases as F  # noqa: E402

# Examples per target at --scale 1: 10,000 in all. Bags cost a copy and a read each.
EXAMPLES = {"raw_images": 4000, "compressed_images": 3000, "label_files": 2500, "bags": 500}


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool):
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def run_target(strategy, check, examples: int) -> dict:
    outcomes: Counter[str] = Counter()
    unexpected: dict[str, dict] = {}

    @F.fuzz_settings(examples)
    @given(strategy)
    def one(case):
        try:
            outcomes[check(case)] += 1
        except Exception as exc:  # noqa: BLE001 - counting them is the point
            outcomes["unexpected"] += 1
            key = f"{type(exc).__module__}.{type(exc).__name__}"
            unexpected.setdefault(key, {"count": 0, "message": str(exc)[:300], "example": repr(case)[:300]})
            unexpected[key]["count"] += 1

    start = time.perf_counter()
    one()
    return {"cases": sum(outcomes.values()), **dict(outcomes), "unexpected_types": unexpected,
            "wall_s": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the examples per target")
    parser.add_argument("--native-stderr", action="store_true", help="keep OpenCV/libjpeg warnings")
    args = parser.parse_args()
    examples = {name: max(1, int(n * args.scale)) for name, n in EXAMPLES.items()}
    with tempfile.TemporaryDirectory(prefix="fuzz_") as tmp, native_stderr_silenced(not args.native_stderr):
        directory = Path(tmp)
        bags = F.make_bags(directory)
        targets = {
            "raw_images": (F.raw_images(), F.check_raw_image),
            "compressed_images": (F.compressed_images(), F.check_compressed),
            "label_files": (F.label_files(), lambda content: F.check_label_file(content, directory)),
            "bags": (F.bag_damage(), lambda case: F.check_bag(case, bags)),
        }
        results = {name: run_target(strategy, check, examples[name]) for name, (strategy, check) in targets.items()}
    total = sum(r["cases"] for r in results.values())
    unexpected = sum(r.get("unexpected", 0) for r in results.values())
    out = {
        "benchmark": "fuzz",
        "targets": results,
        "total_cases": total,
        "unexpected": unexpected,
        "peak_rss_mb": round(peak_rss_mb(), 1),  # a decoder that believes a header's size shows here
        "goals": {"at_least_10000_cases": total >= 10_000, "zero_unexpected": unexpected == 0},
        "env": environment(),
    }
    print(json.dumps(out, indent=2))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
