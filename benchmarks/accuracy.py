"""Accuracy on real people: the eval-set runner on ../shared/data/eval plus the photos of
../shared/data/images/emotion_labeled (label = file name, the largest face is the person).

Prints one JSON object: the settings, the overall scores (confident labels, low-confidence
labels, faces found, phantom rate, track ids per appearance, per-class recall, confusion) and a
short line per item. Every detector / crop / tracker setting can be overridden, so a
before/after table needs no code edits:

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/accuracy.py
    ... benchmarks/accuracy.py --detector blazeface_back --weights-dir /tmp/w --set face_margin=0.1

``--weights-dir`` is a folder laid out as ``models/fetch`` would leave it (e.g.
``detectors/blazeface.pth`` and ``detectors/anchors.npy``, copied from ../shared/data/blazeface).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from emotion_perception.cli import parse_settings
from emotion_perception.evaluation import evalset
from emotion_perception.pipeline import create_engine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def item_summary(item: dict) -> dict:
    scores = item["confident"] or item["lowconf"]
    return {
        "name": item["name"],
        "labels": "confident" if item["confident"] else "lowconf",
        "war": scores["war"],
        "found_rate": scores["found_rate"],
        "phantom_rate": item["phantom_rate"],
        "ids_per_appearance": item["ids_per_appearance"],
        "max_ids_per_appearance": item["max_ids_per_appearance"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DATA / "eval")
    parser.add_argument("--named-images", type=Path, default=DATA / "images" / "emotion_labeled",
                        help="photos labelled by file name ('' to leave them out)")
    parser.add_argument("--profile", default="lite-fer2013")
    parser.add_argument("--detector", default=None, help="detector name (default: the profile's)")
    parser.add_argument("--weights-dir", type=Path, default=None, help="a models/fetch-style weights folder")
    parser.add_argument("--min-face-score", type=float, default=None)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE",
                        help="EngineConfig override, e.g. face_margin=0.1 (repeatable)")
    parser.add_argument("--report", type=Path, default=None, help="also write the HTML/Markdown report here")
    parser.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    args = parser.parse_args()
    if not args.eval_dir.is_dir():
        print(f"no evaluation set at {args.eval_dir}", file=sys.stderr)
        return 1

    items = evalset.load_eval_set(args.eval_dir)
    if str(args.named_images) not in ("", ".") and args.named_images.is_dir():
        items += evalset.named_image_items(args.named_images)
    engine, choice = create_engine(args.profile, device="cpu", detector=args.detector, weights_dir=args.weights_dir,
                                   min_face_score=args.min_face_score, **parse_settings(args.settings))
    start = time.perf_counter()
    result = evalset.run_eval_set(engine, items, progress=args.progress)
    wall = time.perf_counter() - start
    data = result.to_dict()
    settings = {"profile": choice.profile.name, "detector": getattr(engine.detector, "name", "?"),
                "weights_dir": str(args.weights_dir) if args.weights_dir else None,
                "min_face_score": args.min_face_score, "overrides": args.settings, "reason": choice.reason}
    if args.report:
        evalset.write_eval_set_report(result, args.report, "benchmarks/accuracy.py", settings)
    print(json.dumps({
        "settings": settings,
        "engine_config": engine.stats()["config"],
        "wall_s": wall,
        "frames": data["overall"]["frames"],
        "overall": data["overall"],
        "items": [item_summary(i) for i in data["items"]],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
