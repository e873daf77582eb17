"""Console entry points: ``emotion-train`` (fit a model profile on DFEW/FERV39k) and
``emotion-evaluate`` (score checkpoints on a test split, DFEW 5-fold averaging).

``emotion-train --config cfg.yaml [--resume last.pt] [--out DIR]`` writes to DIR: ``last.pt``
(every epoch, with optimizer/scheduler state for resuming), ``best.pt`` (best validation score),
``history.jsonl`` (one line per epoch) and ``config.yaml`` (the resolved config).

``emotion-evaluate --checkpoint 'runs/fold{fold}/best.pt' --dataset dfew --root DIR --fold all``
writes ``report.json`` (UAR, WAR, per-class recall, confusion matrix per fold, mean ± std over
folds), confusion-matrix PNGs and per-clip predictions.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import inspect
import json
import logging
import random
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from ..evaluation.metrics import scores_from_confusion
from ..evaluation.plots import plot_confusion
from ..labels import CLASS_NAMES
from ..models import checkpoint as ckpt
from ..errors import WeightsMissingError
from ..models.registry import KIND_MODULES, build_model, get_profile
from .augment import AugmentConfig
from .config import ConfigError, TrainConfig
from .datasets import DFEW_FOLDS, ClipDataset, DatasetError, clip_loader, read_split, stratified_split
from .trainer import Trainer, make_criterion, trainable_parameters

log = logging.getLogger("emotion_perception.training")

# Errors a user can fix (bad config, data, weights, checkpoint): one line on stderr, exit code 2.
USER_ERRORS = (ConfigError, DatasetError, WeightsMissingError, FileNotFoundError, KeyError, ValueError)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loader(dataset: ClipDataset, batch_size: int, num_workers: int, *, shuffle: bool, device) -> DataLoader:
    return clip_loader(dataset, batch_size, num_workers, shuffle=shuffle,
                       pin_memory=torch.device(device).type == "cuda")


def with_head_overrides(profile, overrides: dict):
    """``profile`` with the training config's ``head`` settings over its own (the model switches).

    Only the head kind's own settings may be overridden (its module's ``DEFAULTS``): a typo must
    not train the default silently.
    """
    if not overrides:
        return profile
    module = importlib.import_module(f"{ckpt.__package__}.{KIND_MODULES[profile.kind]}")
    known = set(getattr(module, "DEFAULTS", {}))
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"head: unknown keys {sorted(unknown)} for a {profile.kind} head; known: {sorted(known)}")
    return dataclasses.replace(profile, head={**profile.head, **overrides})


def build_untrained(profile, device, weights_dir=None):
    """The profile's model without the trained head checkpoint the profile may name.

    Training starts from the head's initialisation; evaluation loads the checkpoint under test.
    Head models (OUS, DuSE) take ``load_head`` in their ``build``; other kinds have no trained head
    to leave out (their weights are part of the model) and build as usual.
    """
    weights_dir = Path(weights_dir) if weights_dir else None
    module = importlib.import_module(f"{ckpt.__package__}.{KIND_MODULES[profile.kind]}")
    if "load_head" not in inspect.signature(module.build).parameters:
        return build_model(profile, device, weights_dir)
    model = module.build(profile, weights_dir, device, load_head=False)
    model.model_id = profile.name
    return model


def _clip_dataset(model, records, num_frames: int, *, train: bool, scene_from_face: bool = False,
                  augment: AugmentConfig | None = None) -> ClipDataset:
    return ClipDataset(
        records,
        num_frames=num_frames,
        face_size=model.face_size,
        scene_size=model.scene_size,
        with_scene=model.uses_scene,
        scene_from_face=scene_from_face,
        train=train,
        augment=augment,
    )


# ------------------------------------------------------------------------------------ training


def run_training(cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> dict:
    """Train ``cfg.profile`` on the configured dataset; returns a summary dict."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    profile = with_head_overrides(get_profile(cfg.profile), cfg.head)
    d, t = cfg.dataset, cfg.train
    num_frames = d.num_frames or profile.window
    # The whole list is checked before the (large) model is built: data errors show up at once.
    records = read_split(d.kind, d.root, "train", fold=d.fold, **d.reader_options("train"))
    train_records, val_records = stratified_split(records, d.val_fraction, cfg.seed)
    log.info("%s fold %s: %d training clips, %d validation clips", d.kind, d.fold, len(train_records), len(val_records))
    model = build_untrained(profile, device, cfg.weights_dir)
    train_loader = make_loader(
        _clip_dataset(model, train_records, num_frames, train=True, scene_from_face=d.scene_from_face,
                      augment=cfg.augment),
        t.batch_size, t.num_workers, shuffle=True, device=device,
    )
    val_loader = make_loader(
        _clip_dataset(model, val_records, num_frames, train=False, scene_from_face=d.scene_from_face),
        t.batch_size, t.num_workers, shuffle=False, device=device,
    )

    optimizer = torch.optim.Adam(trainable_parameters(model), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr
    )
    criterion = make_criterion(model, t.alpha)
    trainer = Trainer(
        model, optimizer, criterion=criterion, device=device, amp=t.amp, grad_clip=t.grad_clip,
        warmup_steps=round(t.warmup_epochs * len(train_loader)), progress=progress,
    )

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    start_epoch, best, history = 1, None, []
    if resume:
        meta = ckpt.load_checkpoint(resume, model, profile.name)
        state = meta.get("extra") or {}
        if meta.get("optimizer") is None or "scheduler" not in state:
            raise ValueError(f"{resume}: holds no optimizer/scheduler state; resume from a last.pt")
        optimizer.load_state_dict(meta["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        trainer.scaler.load_state_dict(state.get("scaler", {}))
        criterion.load_state_dict(state.get("criterion", {}))
        best, history = state.get("best"), list(state.get("history", []))
        start_epoch = int(meta["epoch"]) + 1
        trainer.steps_done = (start_epoch - 1) * len(train_loader)
        seed_everything(cfg.seed + start_epoch)  # fresh, reproducible draws after the resume point
        log.info("resumed from %s at epoch %d", resume, start_epoch)

    # history.jsonl mirrors the run being continued (or starts empty), never an older run's lines.
    (out / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    for epoch in range(start_epoch, t.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        stats = trainer.train_epoch(train_loader, desc=f"epoch {epoch}/{t.epochs}")
        val = trainer.evaluate(val_loader, desc="validate")
        score = val.scores.uar if t.select == "uar" else val.scores.war
        scheduler.step(score)
        row = {
            "epoch": epoch,
            "lr": lr,
            "train": {k: float(v) for k, v in stats.items()},
            "val": {"uar": val.scores.uar, "war": val.scores.war, "loss": val.loss},
        }
        history.append(row)
        with open(out / "history.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        improved = best is None or score > best["score"]
        if improved:
            best = {"epoch": epoch, "score": score, "metric": t.select, "uar": val.scores.uar, "war": val.scores.war}
        log.info(
            "epoch %d/%d  lr %.2e  train loss %.4f  val UAR %.4f WAR %.4f%s",
            epoch, t.epochs, lr, stats["loss"], val.scores.uar, val.scores.war, "  (best)" if improved else "",
        )
        metrics = {
            "val_uar": val.scores.uar, "val_war": val.scores.war, "val_loss": val.loss, "train_loss": stats["loss"],
        }
        run_info = {"config": cfg.to_dict(), "num_frames": num_frames, "best": best}
        if improved:
            ckpt.save_checkpoint(out / "best.pt", model, profile.name, epoch=epoch, metrics=metrics, extra=run_info)
        ckpt.save_checkpoint(
            out / "last.pt", model, profile.name, epoch=epoch, metrics=metrics, optimizer=optimizer,
            extra={**run_info, "scheduler": scheduler.state_dict(), "scaler": trainer.scaler.state_dict(),
                   "criterion": criterion.state_dict(), "history": history},
        )
    summary = {"out": str(out), "epochs_run": len(history), "best": best}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["prepare-dfew"]:
        from .prepare_dfew import prepare_main

        return prepare_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="emotion-train", description="Train an emotion model profile.",
        epilog="emotion-train prepare-dfew --root DFEW --out DIR: scene frames + faces from DFEW's original videos")
    parser.add_argument("--config", required=True, help="training config YAML (see training/configs/)")
    parser.add_argument("--resume", help="continue from this last.pt (model, optimizer, scheduler, epoch)")
    parser.add_argument("--out", help="output folder (overrides the config's 'out')")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        cfg = TrainConfig.from_yaml(args.config)
        if args.out:
            cfg.out = args.out
        summary = run_training(cfg, resume=args.resume, progress=not args.no_progress)
    except USER_ERRORS as e:
        print(f"emotion-train: error: {_message(e)}", file=sys.stderr)
        return 2
    best = summary["best"]
    print(f"best epoch {best['epoch']}: val UAR {best['uar']:.4f} WAR {best['war']:.4f} -> {summary['out']}")
    return 0


# ---------------------------------------------------------------------------------- evaluation


def evaluate_checkpoint(
    checkpoint: str | Path,
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
):
    """Score one checkpoint on a whole test split; returns (EvalResult, records, info dict).

    ``models`` caches built models by profile name, so five folds build the backbone once; each
    checkpoint replaces every trainable tensor (``load_checkpoint`` refuses partial matches).
    """
    dev = resolve_device(device)
    header = checkpoint_header(checkpoint)
    profile = with_head_overrides(get_profile(profile_name or header["profile"]), header["head"])
    models = {} if models is None else models
    key = (profile.name, header["seed"], json.dumps(header["head"], sort_keys=True))
    if key not in models:
        # Built under the training seed: a backbone without a weight file (the tiny test profiles)
        # is then the one the head was trained on.
        seed_everything(header["seed"])
        models[key] = build_untrained(profile, dev, weights_dir)
    model = models[key]
    meta = ckpt.load_checkpoint(checkpoint, model, profile.name)
    frames = num_frames or (meta.get("extra") or {}).get("num_frames") or profile.window
    records = read_split(kind, root, "test", fold=fold, **(reader_options or {}))
    loader = make_loader(_clip_dataset(model, records, frames, train=False, scene_from_face=scene_from_face),
                         batch_size, num_workers, shuffle=False, device=dev)
    result = Trainer(model, None, device=dev, amp=dev.type == "cuda", progress=progress).evaluate(
        loader, desc=f"test fold {fold}" if fold else "test"
    )
    info = {"checkpoint": str(checkpoint), "profile": profile.name, "epoch": meta.get("epoch"), "num_frames": frames}
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
    if len(folds) > 1 and "{fold}" not in args.checkpoint:
        raise ValueError("--fold all needs one checkpoint per fold: give a pattern such as 'runs/fold{fold}/best.pt'")
    out = Path(args.out) if args.out else _default_report_dir(args.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    report = {"dataset": args.dataset, "root": str(args.root), "class_order": list(CLASS_NAMES), "folds": {}}
    total, models = None, {}
    for fold in folds:
        path = args.checkpoint.format(fold=fold) if fold is not None else args.checkpoint
        result, records, info = evaluate_checkpoint(
            path, args.dataset, args.root, fold=fold, profile_name=args.profile, device=args.device,
            weights_dir=args.weights_dir, batch_size=args.batch_size, num_workers=args.num_workers,
            num_frames=args.num_frames, reader_options=options, scene_from_face=args.scene_from_face,
            progress=not args.no_progress, models=models,
        )
        tag = f"fold{fold}" if fold is not None else "test"
        title = f"{args.dataset.upper()} {tag}: UAR {result.scores.uar:.2%}  WAR {result.scores.war:.2%}"
        png = plot_confusion(result.scores.confusion, CLASS_NAMES, out / f"confusion_{tag}.png", title)
        _write_predictions(out / f"predictions_{tag}.csv", result, records)
        report["folds"][tag] = {**info, **result.scores.to_dict(), "confusion_png": str(png)}
        total = result.scores.confusion if total is None else total + result.scores.confusion
        print(f"{tag}: UAR {result.scores.uar:.4f}  WAR {result.scores.war:.4f}  ({result.scores.samples} clips)")

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


def evaluate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotion-evaluate", description="Score checkpoints on a test split.")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint file, or a pattern with {fold} for --fold all")
    parser.add_argument("--dataset", required=True, choices=["dfew", "ferv39k"])
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--fold", help="DFEW fold 1..5, or 'all' (mean ± std over the five folds)")
    parser.add_argument("--out", help="report folder (default: <checkpoint folder>/evaluation)")
    parser.add_argument("--profile", help="model profile (default: the one the checkpoint names)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights-dir", help="folder of backbone weights (default: the profile's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--num-frames", type=int, help="frames per clip (default: as trained)")
    parser.add_argument("--clips-root", help="DFEW: frame folders (default <root>/Clip/clip_224x224)")
    parser.add_argument("--faces-root", help="FERV39k: face crops (default <root>/2_ClipsforFaceCrop)")
    parser.add_argument("--scenes-root", help="scene frames with the same clip folders")
    parser.add_argument("--prepared-root", help="DFEW: output of 'emotion-train prepare-dfew' (faces + scenes)")
    parser.add_argument("--scene-from-face", action="store_true",
                        help="let a scene model see the face crop as its scene when the data has no scenes")
    parser.add_argument("--split-file", help="FERV39k: test list (default <root>/4_setups/All_scenes/test_All.csv)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        run_evaluation(args)
    except USER_ERRORS as e:
        print(f"emotion-evaluate: error: {_message(e)}", file=sys.stderr)
        return 2
    return 0


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _message(e: Exception) -> str:
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)
