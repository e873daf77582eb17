"""The work behind ``emotion-train`` and ``emotion-evaluate`` (training/cli.py), as plain functions.

``run_training`` fits a model profile on DFEW/FERV39k; ``run_evaluation`` scores checkpoints on
a test split (DFEW 5-fold averaging). What they write is described in training/cli.py.
``run_cache`` writes the frozen-feature cache (training/feature_cache.py). Under torchrun all
three run distributed (training/distributed.py).
"""
from __future__ import annotations

import csv
import dataclasses
import importlib
import inspect
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler

from ..evaluation.metrics import scores_from_confusion
from ..evaluation.plots import plot_confusion
from ..labels import CLASS_NAMES
from ..models import checkpoint as ckpt
from ..errors import WeightsMissingError
from ..models.registry import KIND_MODULES, build_model, get_profile
from . import distributed
from .augment import AugmentConfig
from .config import ConfigError, TrainConfig
from .datasets import DFEW_FOLDS, ClipDataset, DatasetError, clip_loader, read_split, stratified_split
from .feature_cache import (
    CachedClipDataset, FeatureCache, build_cache, cached_flips, check_cacheable, dataset_pin,
)
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


def make_loader(dataset: ClipDataset, batch_size: int, num_workers: int, *, shuffle: bool, device,
                world: distributed.World = distributed.World(), seed: int = 0) -> DataLoader:
    """A loader over this rank's part: shuffled training shards (padded to equal length, as DDP
    needs) or disjoint evaluation shards (every clip scored once)."""
    sampler = None
    if world.distributed:
        sampler = (DistributedSampler(dataset, world.size, world.rank, shuffle=True, seed=seed) if shuffle
                   else distributed.EvalShardSampler(len(dataset), world))
    return clip_loader(dataset, batch_size, num_workers, shuffle=shuffle,
                       pin_memory=torch.device(device).type == "cuda", sampler=sampler)


def rank_batch_size(batch_size: int, world: distributed.World) -> int:
    """``train.batch_size`` is the global batch (the paper's 16), split evenly over the ranks."""
    if batch_size % world.size:
        raise ConfigError(f"train.batch_size {batch_size} does not split over {world.size} processes")
    return batch_size // world.size


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
                  augment: AugmentConfig | None = None, cache: FeatureCache | None = None) -> ClipDataset:
    if cache is not None:
        return CachedClipDataset(records, cache, num_frames=num_frames, with_scene=model.uses_scene,
                                 scene_from_face=scene_from_face, train=train, augment=augment)
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


def open_cache(folder, model, records, pin: dict, *, flips: int, amp: bool) -> FeatureCache:
    """The feature cache for these clips, after checking it holds exactly this run's features."""
    check_cacheable(getattr(model, "kind", ""))
    cache = FeatureCache(folder)
    cache.check(model, records, pin, flips=flips, amp=amp)
    return cache


def run_training(cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> dict:
    """Train ``cfg.profile`` on the configured dataset; returns a summary dict.

    Under torchrun each process trains its share of every global batch through DDP; rank 0
    alone writes the output folder.
    """
    world, device = distributed.setup(resolve_device(cfg.device))
    seed_everything(cfg.seed)
    profile = with_head_overrides(get_profile(cfg.profile), cfg.head)
    d, t = cfg.dataset, cfg.train
    num_frames = d.num_frames or profile.window
    batch_size = rank_batch_size(t.batch_size, world)
    if d.feature_cache:  # refusals before any work
        check_cacheable(profile.kind)
        flips = cached_flips(cfg.augment)
    # The whole list is checked before the (large) model is built: data errors show up at once.
    records = read_split(d.kind, d.root, "train", fold=d.fold, **d.reader_options("train"))
    train_records, val_records = stratified_split(records, d.val_fraction, cfg.seed)
    log.info("%s fold %s: %d training clips, %d validation clips", d.kind, d.fold, len(train_records), len(val_records))
    model = build_untrained(profile, device, cfg.weights_dir)
    cache = None
    if d.feature_cache:
        cache = open_cache(d.feature_cache, model, records, dataset_pin(d.kind, d.root, d.reader_options("train")),
                           flips=flips, amp=t.amp and device.type == "cuda")
    if world.rank:  # ranks draw different frames and dropout masks (the model is already built alike)
        seed_everything(cfg.seed + 100_003 * world.rank)
    train_loader = make_loader(
        _clip_dataset(model, train_records, num_frames, train=True, scene_from_face=d.scene_from_face,
                      augment=cfg.augment, cache=cache),
        batch_size, t.num_workers, shuffle=True, device=device, world=world, seed=cfg.seed,
    )
    val_loader = make_loader(
        _clip_dataset(model, val_records, num_frames, train=False, scene_from_face=d.scene_from_face, cache=cache),
        batch_size, t.num_workers, shuffle=False, device=device, world=world,
    )

    optimizer = torch.optim.Adam(trainable_parameters(model), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr
    )
    criterion = make_criterion(model, t.alpha)
    trainer = Trainer(
        model, optimizer, criterion=criterion, device=device, amp=t.amp, grad_clip=t.grad_clip,
        warmup_steps=round(t.warmup_epochs * len(train_loader)), progress=progress, features=cache is not None,
    )

    out = Path(cfg.out)
    if world.main:
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
        # fresh, reproducible draws after the resume point (per rank, as above)
        seed_everything(cfg.seed + start_epoch + 100_003 * world.rank)
        log.info("resumed from %s at epoch %d", resume, start_epoch)

    # history.jsonl mirrors the run being continued (or starts empty), never an older run's lines.
    if world.main:
        (out / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    for epoch in range(start_epoch, t.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
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
        if world.main:
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
        if not world.main:
            continue  # every rank holds the same weights and state after the epoch; rank 0 saves them
        if improved:
            ckpt.save_checkpoint(out / "best.pt", model, profile.name, epoch=epoch, metrics=metrics, extra=run_info)
        ckpt.save_checkpoint(
            out / "last.pt", model, profile.name, epoch=epoch, metrics=metrics, optimizer=optimizer,
            extra={**run_info, "scheduler": scheduler.state_dict(), "scaler": trainer.scaler.state_dict(),
                   "criterion": criterion.state_dict(), "history": history},
        )
    summary = {"out": str(out), "epochs_run": len(history), "best": best}
    if world.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    distributed.barrier()
    return summary


def run_cache(cfg: TrainConfig, *, splits=("train", "test"), force: bool = False, progress: bool = True,
              shard_mb: int = 1024) -> dict:
    """Encode every frame of the config's train and test lists into ``dataset.feature_cache``."""
    world, device = distributed.setup(resolve_device(cfg.device))
    seed_everything(cfg.seed)  # a backbone without a weight file (tiny test profiles) = the trained one
    profile = with_head_overrides(get_profile(cfg.profile), cfg.head)  # e.g. OUS early_blocks
    d = cfg.dataset
    if not d.feature_cache:
        raise ConfigError("dataset.feature_cache is not set: name the folder the cache goes to")
    check_cacheable(profile.kind)
    flips = cached_flips(cfg.augment)
    by_name, pins = {}, []
    for split in splits:
        options = d.reader_options(split)
        if dataset_pin(d.kind, d.root, options) not in pins:
            pins.append(dataset_pin(d.kind, d.root, options))
        for record in read_split(d.kind, d.root, split, fold=d.fold, **options):
            by_name.setdefault(record.name, record)
    model = build_untrained(profile, device, cfg.weights_dir)
    records = [by_name[name] for name in sorted(by_name)]
    log.info("caching %d clips of %s (%s) with %s", len(records), d.kind, "+".join(splits), profile.name)
    return build_cache(
        d.feature_cache, model, records, pins, flips=flips, device=device,
        amp=cfg.train.amp, world=world, shard_bytes=shard_mb << 20, force=force, progress=progress,
    )


# ---------------------------------------------------------------------------------- evaluation


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
        _clip_dataset(model, records, frames, train=False, scene_from_face=scene_from_face, cache=cache),
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
