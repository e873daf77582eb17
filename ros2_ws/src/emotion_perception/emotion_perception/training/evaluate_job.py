"""``emotion-evaluate``: score checkpoints on a test split (DFEW: one fold or all five, averaged);
what it writes is described in training/cli.py."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from ..engine.device import resolve_device
from ..evaluation.metrics import scores_from_confusion
from ..evaluation.plots import plot_confusion
from ..labels import CLASS_NAMES
from ..models import checkpoint as ckpt
from ..models.registry import get_profile
from . import distributed
from .datasets import DFEW_FOLDS, read_split
from .feature_cache import dataset_pin
from .jobs import build_untrained, clip_dataset, make_loader, open_cache, seed_everything, with_head_overrides
from .trainer import Trainer


def evaluate_checkpoint(
    checkpoint: str | Path | None,
    kind: str,
    root: str | Path,
    *,
    fold: int | None = None,
    profile_name: str | None = None,
    device: str = "auto",
    weights_dir: str | Path | None = None,
    batch_size: int = 16,
    num_workers: int = 2,
    num_frames: int | None = None,
    reader_options: dict | None = None,
    scene_from_face: bool = False,
    progress: bool = True,
    models: dict | None = None,
    feature_cache: str | Path | None = None,
    world: distributed.World = distributed.World(),
):
    """Score one checkpoint on a whole test split; returns (EvalResult, records, info dict).

    ``models`` caches built models by profile name, so five folds build the backbone once; each
    checkpoint replaces every trainable tensor (``load_checkpoint`` refuses partial matches).
    Without a checkpoint, ``profile_name`` must name a model without a trained head (zero-shot).
    Under torchrun each rank scores its shard and the confusion matrices are summed.
    """
    dev = resolve_device(device)
    if checkpoint is None and not profile_name:
        raise ValueError("give --checkpoint, or --profile of a model without a trained head (zero-shot)")
    header = (checkpoint_header(checkpoint) if checkpoint is not None
              else {"profile": profile_name, "seed": 0, "head": {}})
    profile = with_head_overrides(get_profile(profile_name or header["profile"]), header["head"])
    models = {} if models is None else models
    key = (profile.name, header["seed"], json.dumps(header["head"], sort_keys=True))
    if key not in models:
        # Built under the training seed: a backbone without a weight file (the tiny test profiles)
        # is then the one the head was trained on.
        seed_everything(header["seed"])
        models[key] = build_untrained(profile, dev, weights_dir)
    model = models[key]
    if checkpoint is not None:
        meta = ckpt.load_checkpoint(checkpoint, model, profile.name)
    elif any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"profile {profile.name} has a trained head: give its --checkpoint")
    else:
        meta = {}
    frames = num_frames or (meta.get("extra") or {}).get("num_frames") or profile.window
    records = read_split(kind, root, "test", fold=fold, **(reader_options or {}))
    cache = None
    if feature_cache:
        cache = open_cache(feature_cache, model, records, dataset_pin(kind, root, reader_options or {}),
                           flips=1, amp=dev.type == "cuda")
    loader = make_loader(
        clip_dataset(model, records, frames, train=False, scene_from_face=scene_from_face, cache=cache),
        batch_size, num_workers, shuffle=False, device=dev, world=world,
    )
    result = Trainer(model, None, device=dev, amp=dev.type == "cuda", progress=progress,
                     features=cache is not None).evaluate(loader, desc=f"test fold {fold}" if fold else "test")
    info = {"checkpoint": str(checkpoint) if checkpoint else None, "profile": profile.name,
            "epoch": meta.get("epoch"), "num_frames": frames}
    return result, records, info


def checkpoint_header(path: str | Path) -> dict:
    """Profile name, training seed and head overrides of a checkpoint (needed before its model is built)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file or foreign pickle
        raise ValueError(f"{path} is not a readable head checkpoint: {e}") from None
    if not isinstance(payload, dict) or not payload.get("profile"):
        raise ValueError(f"{path} is not a head checkpoint (it names no model profile)")
    config = (payload.get("extra") or {}).get("config") or {}
    return {"profile": str(payload["profile"]), "seed": int(config.get("seed", 0)), "head": config.get("head") or {}}


def _write_predictions(path: Path, result, records) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "target", "prediction", *[f"p_{n}" for n in CLASS_NAMES]])
        for i, t, p, probs in zip(result.indices, result.targets, result.predictions, result.probabilities):
            w.writerow([records[i].name, CLASS_NAMES[t], CLASS_NAMES[p], *[f"{x:.4f}" for x in probs]])


READER_OPTIONS = {"dfew": ("clips_root", "scenes_root", "prepared_root"),
                  "ferv39k": ("faces_root", "scenes_root", "split_file")}


def run_evaluation(args) -> dict:
    """Score the checkpoint(s) of ``args`` (see ``evaluate_main``); rank 0 writes the report."""
    world, device = distributed.setup(resolve_device(args.device))
    if args.dataset == "dfew":
        if args.fold == "all":
            folds = list(DFEW_FOLDS)
        elif args.fold in [str(f) for f in DFEW_FOLDS]:
            folds = [int(args.fold)]
        else:
            raise ValueError(f"DFEW needs --fold 1..5 or --fold all, got {args.fold}")
    else:
        if args.fold not in (None, "all"):
            raise ValueError("FERV39k has one train/test split; leave out --fold")
        folds = [None]
    options = {}
    for name in ("clips_root", "faces_root", "scenes_root", "prepared_root", "split_file"):
        value = getattr(args, name)
        if value is not None:
            if name not in READER_OPTIONS[args.dataset]:
                raise ValueError(f"--{name.replace('_', '-')} does not apply to {args.dataset}")
            options[name] = value
    if len(folds) > 1 and args.checkpoint and "{fold}" not in args.checkpoint:
        raise ValueError("--fold all needs one checkpoint per fold: give a pattern such as 'runs/fold{fold}/best.pt'")
    out = Path(args.out) if args.out else _default_report_dir(args.checkpoint) if args.checkpoint else Path("evaluation")
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    report = {"dataset": args.dataset, "root": str(args.root), "class_order": list(CLASS_NAMES), "folds": {}}
    total, models = None, {}
    for fold in folds:
        path = args.checkpoint.format(fold=fold) if fold is not None and args.checkpoint else args.checkpoint
        result, records, info = evaluate_checkpoint(
            path, args.dataset, args.root, fold=fold, profile_name=args.profile, device=str(device),
            weights_dir=args.weights_dir, batch_size=args.batch_size, num_workers=args.num_workers,
            num_frames=args.num_frames, reader_options=options, scene_from_face=args.scene_from_face,
            progress=not args.no_progress, models=models, feature_cache=args.feature_cache, world=world,
        )
        if not world.main:
            continue
        tag = f"fold{fold}" if fold is not None else "test"
        title = f"{args.dataset.upper()} {tag}: UAR {result.scores.uar:.2%}  WAR {result.scores.war:.2%}"
        png = plot_confusion(result.scores.confusion, CLASS_NAMES, out / f"confusion_{tag}.png", title)
        _write_predictions(out / f"predictions_{tag}.csv", result, records)
        report["folds"][tag] = {**info, **result.scores.to_dict(), "confusion_png": str(png)}
        total = result.scores.confusion if total is None else total + result.scores.confusion
        print(f"{tag}: UAR {result.scores.uar:.4f}  WAR {result.scores.war:.4f}  ({result.scores.samples} clips)")

    if not world.main:
        return report
    uars = np.array([f["uar"] for f in report["folds"].values()])
    wars = np.array([f["war"] for f in report["folds"].values()])
    pooled = scores_from_confusion(total)
    report["summary"] = {
        "folds": len(folds),
        "uar_mean": float(uars.mean()),
        "uar_std": float(uars.std()),  # population std over folds (ddof=0)
        "war_mean": float(wars.mean()),
        "war_std": float(wars.std()),
        "pooled": pooled.to_dict(),  # scores of the summed confusion matrix of all folds
    }
    if len(folds) > 1:
        report["summary"]["confusion_png"] = str(
            plot_confusion(total, CLASS_NAMES, out / "confusion_all.png",
                           f"{args.dataset.upper()} {len(folds)} folds: UAR {uars.mean():.2%}  WAR {wars.mean():.2%}")
        )
    (out / "report.json").write_text(json.dumps(report, indent=2))
    s = report["summary"]
    print(
        f"UAR {s['uar_mean']:.4f} ± {s['uar_std']:.4f}  WAR {s['war_mean']:.4f} ± {s['war_std']:.4f}"
        f"  over {len(folds)} fold(s) -> {out / 'report.json'}"
    )
    return report


def _default_report_dir(checkpoint: str) -> Path:
    """<folder of the checkpoint(s)>/evaluation; for a pattern, the folder above the {fold} part."""
    parts = Path(checkpoint).parts
    cut = next((i for i, p in enumerate(parts) if "{fold}" in p), len(parts) - 1)
    return Path(*parts[:cut]) / "evaluation" if cut else Path("evaluation")
