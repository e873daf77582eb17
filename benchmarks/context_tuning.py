"""What the LLM hears, and the context settings chosen from it: one engine run over the labelled dev
set (plus change sequences spliced from it), then the bridge's context tracker replayed over the
recorded estimates for a grid of settings (smoothing, switch margin, hold time, uncertainty
threshold). Prints one JSON object: the per-frame accuracy of the run, "before" (main's context
defaults: smoothing 1 s, margin 0.15, hold 0.5 s, min_confidence 0.4, only the addressee told),
"after" (the defaults now in llm/context.py), every grid point and the targets met.

Change sequences (written to --cache, never to the repository), because the dev set's clips hold
one label per person and so no labelled change of emotion:
- ``london_NNN``: each London person with a neutral and a smiling photo as a still camera at
  15 frames/s: neutral 2 s, smiling 3 s, neutral 3 s (two changes each, six people);
- ``cremad_1001``: the CREMA-D actor's clips back to back: NEU, SAD, NEU, DIS, NEU, FEA, with each
  clip's own labels (the SAD/DIS/FEA labels are the low-confidence set: raters disagreed).

Dev-set numbers (accuracy, uncertain share, head count; wrong episodes per minute on the steady
clips: dev videos with one confident label per person) come from the dev items only, delays from the change sequences only: ``delay_s`` over all
17 changes (a change never named counts as infinitely late), ``delay_seen_s`` over the changes
that the published estimates themselves name at some point (no context setting can name the
others); the targets in ``meets`` use ``delay_seen_s``.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/context_tuning.py --weights-dir /tmp/w
    ... benchmarks/context_tuning.py --weights-dir /tmp/empty      # nothing fetched (MTCNN)
    ... --set temperature=1                                            # the engine without calibration
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np

from emotion_perception.cli import parse_settings
from emotion_perception.evaluation import context_eval, evalset
from emotion_perception.llm.context import ContextConfig
from emotion_perception.pipeline import create_engine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BEFORE = ContextConfig(smoothing_s=1.0, switch_margin=0.15, switch_hold_s=0.5, min_confidence=0.4, max_people=1)
# the context with nothing of its own: every published estimate told as it is
PER_FRAME = ContextConfig(smoothing_s=0.0, switch_margin=0.0, switch_hold_s=0.0, min_confidence=0.0)
GRID = dict(smoothing_s=(0.0, 0.15, 0.3, 0.5, 1.0), switch_margin=(0.0, 0.05, 0.1, 0.15),
            switch_hold_s=(0.0, 0.2, 0.35, 0.5), min_confidence=(0.15, 0.25, 0.3, 0.35, 0.4))
SPLICE_FPS = 15.0
LONDON = ("002", "037", "064", "103", "107", "130")
CREMAD = ("NEU", "SAD", "NEU", "DIS", "NEU", "FEA")


def _still(path: Path, width: int = 640) -> np.ndarray:
    image = cv2.imread(str(path))
    return cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)


def _write(path: Path, frames: list[np.ndarray], fps: float, rows: list[str], lowconf: list[str]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(cv2.resize(f, (w, h)))
    writer.release()
    head = "start_frame,end_frame_exclusive,label,face_hint\n"
    Path(f"{path}.labels.csv").write_text(head + "".join(rows))
    if lowconf:
        Path(f"{path}.labels_lowconf.csv").write_text(head + "".join(lowconf))


def build_splices(eval_dir: Path, out: Path) -> Path:
    """The change sequences above, in the eval-set format under ``out``."""
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for person in LONDON:
        neutral, smiling = (_still(eval_dir / "images" / f"london_{person}_{k}.jpg") for k in ("neutral", "smiling"))
        plan = [(neutral, "neutral", 2.0), (smiling, "happy", 3.0), (neutral, "neutral", 3.0)]
        frames, rows, start = [], [], 0
        for image, label, seconds in plan:
            n = int(seconds * SPLICE_FPS)
            frames += [image] * n
            rows.append(f"{start},{start + n},{label},only face\n")
            start += n
        _write(videos / f"london_{person}.avi", frames, SPLICE_FPS, rows, [])
    frames, rows, lowconf, offset = [], [], [], 0
    fps = None
    for clip in CREMAD:
        video = eval_dir / "videos" / f"cremad_1001_DFA_{clip}_XX.flv"
        cap = cv2.VideoCapture(str(video))
        fps = fps or cap.get(cv2.CAP_PROP_FPS)
        clip_frames = []
        while True:
            ok, image = cap.read()
            if not ok:
                break
            clip_frames.append(image)
        cap.release()
        for suffix, target in ((".labels.csv", rows), (".labels_lowconf.csv", lowconf)):
            labels = Path(f"{video}{suffix}")
            for line in labels.read_text().splitlines()[1:] if labels.is_file() else ():
                if line.strip():
                    start, end, label, hint = line.split(",", 3)
                    target.append(f"{int(start) + offset},{int(end) + offset},{label},{hint}\n")
        frames += clip_frames
        offset += len(clip_frames)
    _write(videos / "cremad_1001.avi", frames, fps, rows, lowconf)
    return out


def record(args, items) -> tuple[list, dict]:
    """[(name, kind, frames, per-frame WAR of all labels)] of one engine run, cached by its settings."""
    key = hashlib.sha256(json.dumps([args.profile, str(args.weights_dir), args.detector, args.settings,
                                     [i.name for i in items]]).encode()).hexdigest()[:16]
    cache = args.cache / f"run_{key}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    engine, choice = create_engine(args.profile, device="cpu", detector=args.detector, weights_dir=args.weights_dir,
                                   **parse_settings(args.settings))
    start = time.perf_counter()
    result = evalset.run_eval_set(engine, items, progress=args.progress)
    info = {"profile": choice.profile.name, "detector": getattr(engine.detector, "name", "?"), "reason": choice.reason,
            "engine_config": engine.stats()["config"], "engine_wall_s": time.perf_counter() - start,
            "overall_per_frame": result.overall.to_dict()["all_labels"]}
    runs = [(i.name, i.kind, i.context_frames, i.to_dict()["all_labels"]) for i in result.items]
    cache.write_bytes(pickle.dumps((runs, info)))
    return runs, info


def _percentiles(delays: list[float]) -> dict:
    """median / p90 as ContextScore reports them (a change never named is infinitely late)."""
    return context_eval.ContextScore(delays=delays).to_dict()["context_delay_s"]


def score(runs, config: ContextConfig, splices: set[str], seen: set | None = None, steady: set[str] = frozenset()) -> dict:
    """Dev-set and change-sequence numbers of one context config; ``seen``: the (item, person,
    seconds) changes that the published estimates themselves name (PER_FRAME), for ``delay_seen_s``."""
    dev, changes, steady_wrong, steady_s = context_eval.ContextScore(), context_eval.ContextScore(), 0, 0.0
    per_item, seen_delays = {}, []
    for name, kind, frames, _ in runs:
        s = context_eval.replay(frames, config, kind == "video")
        per_item[name] = s.to_dict()["context_accuracy"]
        if name in splices:
            changes.add(s)
            seen_delays += [d for d, (person, t) in zip(s.delays, s.changes) if seen is None or (name, person, t) in seen]
            continue
        dev.add(s)
        if name in steady:
            steady_wrong += s.wrong_episodes
            steady_s += s.labelled_s
    d, c = dev.to_dict(), changes.to_dict()
    return {"context_accuracy": d["context_accuracy"], "uncertain_share": d["uncertain_share"],
            "count_accuracy": d["count_accuracy"], "wrong_episodes_per_min_steady":
            steady_wrong / (steady_s / 60) if steady_s else None, "context_wrong_s": d["context_wrong_s"],
            "delay_s": c["context_delay_s"], "delay_seen_s": _percentiles(seen_delays),
            "splice_context_accuracy": c["context_accuracy"],
            "splice_uncertain_share": c["uncertain_share"], "per_item": per_item}


def named_changes(runs, splices: set[str]) -> set:
    """The changes the published estimates name at all (the context cannot name the others)."""
    out = set()
    for name, kind, frames, _ in runs:
        if name in splices:
            s = context_eval.replay(frames, PER_FRAME, kind == "video")
            out |= {(name, person, t) for d, (person, t) in zip(s.delays, s.changes) if np.isfinite(d)}
    return out


def meets(s: dict, per_frame: float) -> dict:
    delay = s["delay_seen_s"]
    return {
        "no_loss": s["context_accuracy"] >= per_frame,
        "uncertain_le_5pct": s["uncertain_share"] <= 0.05,
        "median_delay_le_1s": delay["median"] is not None and delay["median"] <= 1.0,
        "p90_delay_le_2s": delay["p90"] is not None and delay["p90"] <= 2.0,
        "le_1_wrong_episode_per_min": s["wrong_episodes_per_min_steady"] <= 1.0,
    }


def plot(path: Path, grid: list[dict], marks: dict[str, dict], title: str) -> None:
    """Context accuracy against the median delay of the named changes, one dot per grid point,
    coloured by wrong-emotion episodes per minute on the steady clips."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = [g["delay_seen_s"]["median"] or np.nan for g in grid]
    dots = ax.scatter(x, [g["context_accuracy"] for g in grid], c=[g["wrong_episodes_per_min_steady"] for g in grid],
                      cmap="viridis_r", s=12, vmin=0, vmax=4)
    fig.colorbar(dots, ax=ax, label="wrong episodes / min (steady clips)")
    for (name, m), marker in zip(marks.items(), ("s", "*", "D")):
        ax.scatter([m["delay_seen_s"]["median"] or np.nan], [m["context_accuracy"]], marker=marker, s=90,
                   facecolors="none", edgecolors="red", label=name)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("median delay of a change to the sentence naming it (s)")
    ax.set_ylabel("context accuracy (dev set)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DATA / "eval")
    parser.add_argument("--named-images", type=Path, default=DATA / "images" / "emotion_labeled")
    parser.add_argument("--profile", default="lite-fer2013")
    parser.add_argument("--detector", default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/context_tuning"),
                        help="splices and recorded runs (outside the repository)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--plot", type=Path, default=None, help="write the accuracy / delay / flicker curve (PNG)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    dev_items = evalset.load_eval_set(args.eval_dir)
    if args.named_images.is_dir():
        dev_items += evalset.named_image_items(args.named_images)
    splice_items = evalset.load_eval_set(build_splices(args.eval_dir, args.cache / "splices"))
    runs, info = record(args, dev_items + splice_items)
    splices = {i.name for i in splice_items}
    dev_runs = [r for r in runs if r[0] not in splices]
    correct = sum(r[3]["war"] * r[3]["samples"] for r in dev_runs if r[3])
    samples = sum(r[3]["samples"] for r in dev_runs if r[3])
    per_frame = correct / samples
    seen = named_changes(runs, splices)
    # steady clips: dev videos with one confident label per person throughout (the CREMA-D SAD/DIS/FEA
    # clips hold only low-confidence labels, which the classifier misses from start to end: one
    # long wrong stretch each, not flicker)
    steady = {i.name for i in dev_items if i.kind == "video"
              and all(f.confident for faces in i.labels.values() for f in faces)
              and all(len({f.class_id for faces in i.labels.values() for f in faces if f.person == p}) == 1
                      for p in i.people)}
    grid = []
    for values in itertools.product(*GRID.values()):
        cfg = replace(ContextConfig(), **dict(zip(GRID, values)))
        s = score(runs, cfg, splices, seen, steady)
        s.pop("per_item")
        grid.append({**dict(zip(GRID, values)), **s, "meets": meets(s, per_frame)})
    before, after = score(runs, BEFORE, splices, seen, steady), score(runs, ContextConfig(), splices, seen, steady)
    told = score(runs, PER_FRAME, splices, seen, steady)
    if args.plot:
        plot(args.plot, grid, {"before": before, "after (defaults now)": after, "per frame": told},
             f"{info['profile']}, {info['detector']}, temperature {info['engine_config']['temperature']}, "
             f"engine smoothing {info['engine_config']['smoothing']}: {len(grid)} context settings")
    print(json.dumps({
        "run": info, "per_frame_accuracy_dev": per_frame, "dev_samples": samples,
        "changes_named_by_the_estimates": len(seen), "steady_clips": sorted(steady),
        "per_frame_context": {"config": asdict(PER_FRAME), **told},
        "before": {"config": asdict(BEFORE), **before, "meets": meets(before, per_frame)},
        "after": {"config": {k: getattr(ContextConfig(), k) for k in GRID}, **after, "meets": meets(after, per_frame)},
        "grid": grid,
    }, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
