"""Screen face-crop preprocessing variants for the lite model offline, without re-running detection.

``record`` runs the eval set (as ``accuracy.py``) once through the real engine and stores, for every
published estimate, its box, face id, stamp and the pixels around it (a square of 2.2 box sides,
downscaled to at most 256 px box side). ``replay`` re-crops those boxes with each variant, runs the
lite model, the profile's 8-frame window mean and the 1 s EMA per track, and scores the samples as
``eval-set`` does (a missed face counts wrong). The replay of the engine's own settings lands within
a couple of samples of ``accuracy.py``; keep what it finds only after ``accuracy.py`` confirms it
(docs/accuracy.md has the numbers issue 28 got from it).

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/crop_replay.py record /tmp/bf.pkl --weights-dir /tmp/w
    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/crop_replay.py record /tmp/mt.pkl --detector mtcnn
    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/crop_replay.py replay /tmp/bf.pkl plain flip align align@0.15
    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/crop_replay.py replay /tmp/bf.pkl align --baseline 10,0.5
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import torch

from emotion_perception.evaluation import breakdown, evalset
from emotion_perception.evaluation.evalset import LABEL_SETS, MISSED, SCORE_CLASSES
from emotion_perception.faces import crop_face
from emotion_perception.faces.align import RollEstimator, crop_angle
from emotion_perception.pipeline import create_engine
from emotion_perception.types import Box

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REGION_MARGIN = 0.6  # context stored around each box: any variant's crop must fit inside
MAX_BOX = 256  # larger faces are stored downscaled (the model sees 64 px anyway)
SIZE = 64  # the lite model's input
ALIGN_MIN_DEG = 10.0


class Recorder:
    """Engine stand-in for ``evalset.score_item`` that keeps what each estimate was made from."""

    def __init__(self, engine):
        self.engine, self.config, self.log, self.item = engine, engine.config, {}, None

    def reset(self, source=None):
        self.engine.reset()

    def process(self, frame):
        estimates = self.engine.process(frame)
        rows = []
        for e in estimates:
            region = crop_face(frame.image, e.box, REGION_MARGIN)
            scale = min(1.0, MAX_BOX / max(e.box.w, e.box.h, 1.0))
            if scale < 1.0:
                side = max(1, round(region.shape[0] * scale))
                region = cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA)
            h, w = e.box.h * scale, e.box.w * scale
            c = region.shape[0] / 2
            rows.append({"face_id": str(e.face_id), "box": e.box, "stamp": frame.stamp_ns / 1e9, "region": region,
                         "box_in_region": Box(c - w / 2, c - h / 2, w, h)})
        self.log.setdefault(self.item, []).append((frame.image.shape[:2], rows))
        return estimates


def record(args) -> int:
    items = evalset.load_eval_set(args.eval_dir) + evalset.named_image_items(args.named_images)
    engine, choice = create_engine("lite-fer2013", device="cpu", detector=args.detector, weights_dir=args.weights_dir,
                                   face_align=False)
    recorder = Recorder(engine)
    repeats = max(1, int(engine.config.min_hits))
    overall = evalset.ItemScore("overall", "all")
    for item in items:
        recorder.item = item.name
        overall.add(evalset.score_item(recorder, item, repeats))
    conf = overall.to_dict()["confident"]
    with open(args.out, "wb") as f:
        pickle.dump({"items": items, "log": recorder.log, "config": engine.stats()["config"],
                     "detector": getattr(engine.detector, "name", "?")}, f)
    print(json.dumps({"recorded": str(args.out), "detector": getattr(engine.detector, "name", "?"),
                      "engine_war": conf["war"], "engine_uar": conf["uar"]}))
    return 0


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def resized(image: np.ndarray, interpolation=None) -> np.ndarray:
    """To the model's 64 px as the engine does: area when shrinking, bilinear when enlarging."""
    if interpolation is None:
        interpolation = cv2.INTER_AREA if image.shape[0] > SIZE else cv2.INTER_LINEAR
    return cv2.resize(image, (SIZE, SIZE), interpolation=interpolation)


class Variants:
    """name -> function(region, box, margin) giving the 64x64 grey inputs whose answers are averaged."""

    def __init__(self):
        self._roll = None

    def angle(self, region, box) -> float:
        if self._roll is None:
            self._roll = RollEstimator()
        return crop_angle(float(self._roll.roll_degrees(region, [box])[0]), ALIGN_MIN_DEG)

    def __call__(self, name: str, region, box, margin) -> list[np.ndarray]:
        plain = grey(resized(crop_face(region, box, margin)))
        if name == "plain":  # the engine without alignment
            return [plain]
        if name == "flip":
            return [plain, plain[:, ::-1]]
        if name == "via48":  # down to FER2013's own 48 px first
            return [cv2.resize(cv2.resize(grey(crop_face(region, box, margin)), (48, 48), interpolation=cv2.INTER_AREA),
                               (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)]
        if name == "bicubic":  # small crops enlarged bicubically
            crop = grey(crop_face(region, box, margin))
            return [resized(crop, cv2.INTER_CUBIC if crop.shape[0] < SIZE else None)]
        if name == "equalize":
            return [cv2.equalizeHist(plain)]
        if name == "clahe":
            return [cv2.createCLAHE(2.0, (4, 4)).apply(plain)]
        if name == "stretch":  # 1-99 % of the grey levels to the full range
            lo, hi = np.percentile(plain, (1, 99))
            return [np.clip((plain - lo) * 255.0 / max(hi - lo, 1.0), 0, 255).astype(np.uint8)]
        aligned = grey(resized(crop_face(region, box, margin, angle=self.angle(region, box))))
        if name == "align":  # the engine with crop.align (O-Net roll, >= 10 degrees)
            return [aligned]
        if name == "align_flip":
            return [aligned, aligned[:, ::-1]]
        if name == "align_multiscale":  # margins m - 0.05, m, m + 0.05 averaged
            angle = self.angle(region, box)
            return [grey(resized(crop_face(region, box, max(margin + d, 0.0), angle=angle))) for d in (-0.05, 0.0, 0.05)]
        raise ValueError(f"unknown variant {name!r}")


def frame_probs(data, model, variants, name: str, margin: float) -> dict:
    """(item, frame index, estimate index) -> the model's probabilities for that crop (mean over inputs)."""
    out = {}
    for item, frames in data["log"].items():
        for k, (_, rows) in enumerate(frames):
            for j, row in enumerate(rows):
                inputs = np.stack(variants(name, row["region"], row["box_in_region"], margin))
                pixels = torch.from_numpy(np.repeat(inputs[..., None], 3, axis=3).copy())
                with torch.no_grad():
                    out[(item, k, j)] = model.encode_faces(pixels).exp().mean(0).numpy()
    return out


def smoothed(data, probs: dict, window: int, ema_s: float, baseline: tuple[float, float] | None = None) -> dict:
    """Per track: mean of its last ``window`` frame answers, then the EMA on camera time (as the engine).
    ``baseline`` (tau_s, strength): then divided by the track's own running mean of frame answers
    (time constant tau_s) to that power, a per-person prior learnt from the person's history."""
    out = {}
    for item, frames in data["log"].items():
        history, ema, prior = {}, {}, {}
        for k, (_, rows) in enumerate(frames):
            for j, row in enumerate(rows):
                fid = row["face_id"]
                history.setdefault(fid, deque(maxlen=window)).append(probs[(item, k, j)])
                p = np.mean(history[fid], axis=0)
                if fid in ema:
                    then, previous = ema[fid]
                    p = previous + (1 - math.exp(-max(row["stamp"] - then, 0.0) / ema_s)) * (p - previous)
                ema[fid] = (row["stamp"], p)
                if baseline is not None:
                    tau, strength = baseline
                    frame = probs[(item, k, j)]
                    if fid in prior:
                        then, mean = prior[fid]
                        frame = mean + (1 - math.exp(-max(row["stamp"] - then, 0.0) / tau)) * (frame - mean)
                    prior[fid] = (row["stamp"], frame)
                    p = p / np.maximum(frame, 1e-6) ** strength
                    p = p / p.sum()
                out[(item, k, j)] = p
    return out


def scored(data, answers: dict) -> dict:
    """WAR / UAR, per-class counts and faces under 96 px on the confident labels, as eval-set counts them."""
    items = {i.name: i for i in data["items"]}
    confusion = {s: np.zeros((len(SCORE_CLASSES),) * 2, np.int64) for s in LABEL_SETS}
    sizes = {s: breakdown.empty_size_confusion(len(SCORE_CLASSES)) for s in LABEL_SETS}
    for name, frames in data["log"].items():
        item, samples = items[name], []
        for k, (shape, rows) in enumerate(frames):
            index = k if item.kind == "video" else (0 if k == len(frames) - 1 else None)
            labels = item.labels.get(index) if index is not None else None
            if not labels:
                continue
            matched, _ = evalset.match_faces(item, labels, [r["box"] for r in rows], shape[1])
            for label in labels:
                j = matched.get(label.person)
                predicted = MISSED if j is None else int(np.argmax(answers[(name, k, j)]))
                label_set = LABEL_SETS[0] if label.confident else LABEL_SETS[1]
                confusion[label_set][label.class_id, predicted] += 1
                height = label.box.h if label.box is not None else (None if j is None else rows[j]["box"].h)
                samples.append((label.person, index, height, label_set, label.class_id, predicted))
        for height, (_, _, _, label_set, truth, predicted) in zip(
                breakdown.fill_missing_heights([s[:3] for s in samples]), samples):
            sizes[label_set][breakdown.size_bin(height), truth, predicted] += 1
    conf = confusion[LABEL_SETS[0]]
    recall = {n: [int(conf[i, i]), int(conf[i].sum())] for i, n in enumerate(SCORE_CLASSES[:MISSED]) if conf[i].sum()}
    small = sizes[LABEL_SETS[0]][:2].sum(axis=0)  # bins < 64 and 64-96 px
    return {"war": round(float(np.trace(conf) / conf.sum()), 4),
            "uar": round(float(np.mean([c / n for c, n in recall.values()])), 4),
            "under_96px": [int(np.trace(small)), int(small.sum())], "recall": recall}


def replay(args) -> int:
    from emotion_perception.models.registry import build_model

    torch.set_num_threads(1)
    with open(args.recording, "rb") as f:
        data = pickle.load(f)
    model, variants = build_model("lite-fer2013", device="cpu"), Variants()
    margin = float(data["config"]["face_margin"])
    for spec in args.variants:
        name, _, value = spec.partition("@")
        probs = frame_probs(data, model, variants, name, float(value) if value else margin)
        answers = smoothed(data, probs, int(data["config"]["window"]), float(data["config"]["smoothing_time_s"]),
                           args.baseline)
        print(json.dumps({"variant": spec, "detector": data["detector"], **scored(data, answers)}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="run the eval set once and store every estimate's pixels")
    rec.add_argument("out", type=Path)
    rec.add_argument("--eval-dir", type=Path, default=DATA / "eval")
    rec.add_argument("--named-images", type=Path, default=DATA / "images" / "emotion_labeled")
    rec.add_argument("--detector", default=None, help="detector name (default: the profile's)")
    rec.add_argument("--weights-dir", type=Path, default=None, help="a models/fetch-style weights folder")
    rep = commands.add_parser("replay", help="score crop variants on a recording")
    rep.add_argument("recording", type=Path)
    rep.add_argument("variants", nargs="+", help="NAME[@MARGIN]: plain, flip, via48, bicubic, equalize, clahe, "
                                                 "stretch, align, align_flip, align_multiscale (default margin: "
                                                 "the recording's)")
    rep.add_argument("--baseline", type=lambda text: tuple(float(v) for v in text.split(",")), default=None,
                     metavar="TAU_S,STRENGTH", help="divide by each track's running mean answer ** STRENGTH")
    args = parser.parse_args()
    return record(args) if args.command == "record" else replay(args)


if __name__ == "__main__":
    sys.exit(main())
