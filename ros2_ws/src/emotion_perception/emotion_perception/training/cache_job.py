"""``emotion-train cache``: encode every frame of a config's train and test clips once with the
frozen backbone into the feature cache (training/feature_cache.py)."""
from __future__ import annotations

import logging

from ..engine.device import resolve_device
from ..models.registry import get_profile
from . import distributed
from .config import ConfigError, TrainConfig
from .datasets import read_split
from .feature_cache import build_cache, cached_flips, check_cacheable, dataset_pin
from .jobs import build_untrained, seed_everything, with_head_overrides

log = logging.getLogger("emotion_perception.training")


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
