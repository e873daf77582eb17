"""``emotion-train``: fit a model profile on DFEW/FERV39k, resumable from a last.pt.

What it writes (config.yaml, history.jsonl, best.pt, last.pt, summary.json) is described in
training/cli.py.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import yaml
from torch.utils.data import DistributedSampler

from ..engine.device import resolve_device
from ..models import checkpoint as ckpt
from ..models.registry import get_profile
from . import distributed
from .config import TrainConfig
from .datasets import read_split, stratified_split
from .feature_cache import cached_flips, check_cacheable, dataset_pin
from .jobs import build_untrained, clip_dataset, make_loader, open_cache, rank_batch_size, seed_everything, with_head_overrides
from .trainer import Trainer, make_criterion, trainable_parameters

log = logging.getLogger("emotion_perception.training")


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
        clip_dataset(model, train_records, num_frames, train=True, scene_from_face=d.scene_from_face,
                      augment=cfg.augment, cache=cache),
        batch_size, t.num_workers, shuffle=True, device=device, world=world, seed=cfg.seed,
    )
    val_loader = make_loader(
        clip_dataset(model, val_records, num_frames, train=False, scene_from_face=d.scene_from_face, cache=cache),
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
