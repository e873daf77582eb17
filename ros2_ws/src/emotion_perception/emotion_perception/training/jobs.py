"""What the three jobs of ``emotion-train`` / ``emotion-evaluate`` share: seeding, loaders,
the profile with a config's head settings, the model without its trained head, the datasets.

The jobs themselves, one module each: train_job.py (the training loop with resume),
cache_job.py (the frozen-feature cache), evaluate_job.py (checkpoint evaluation); training/cli.py
runs them and describes what they write. Under torchrun all three run distributed
(training/distributed.py).
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..errors import WeightsMissingError
from ..models.registry import KINDS, build_model
from . import distributed
from .augment import AugmentConfig
from .config import ConfigError
from .datasets import ClipDataset, DatasetError, clip_loader
from .feature_cache import CachedClipDataset, FeatureCache, check_cacheable

# Errors a user can fix (bad config, data, weights, checkpoint): one line on stderr, exit code 2.
USER_ERRORS = (ConfigError, DatasetError, WeightsMissingError, FileNotFoundError, KeyError, ValueError)


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

    Only the head kind's own settings may be overridden (``KINDS[kind].head_settings``): a typo
    must not train the default silently.
    """
    if not overrides:
        return profile
    known = set(KINDS[profile.kind].head_settings())
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"head: unknown keys {sorted(unknown)} for a {profile.kind} head; known: {sorted(known)}")
    return dataclasses.replace(profile, head={**profile.head, **overrides})


def build_untrained(profile, device, weights_dir=None):
    """The profile's model without the trained head checkpoint the profile may name: training
    starts from the head's initialisation, evaluation loads the checkpoint under test. Kinds
    without a separate head (lite, zero-shot) build as usual."""
    return build_model(profile, device, weights_dir, load_head=False)


def clip_dataset(model, records, num_frames: int, *, train: bool, scene_from_face: bool = False,
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


def open_cache(folder, model, records, pin: dict, *, flips: int, amp: bool) -> FeatureCache:
    """The feature cache for these clips, after checking it holds exactly this run's features."""
    check_cacheable(getattr(model, "kind", ""))
    cache = FeatureCache(folder)
    cache.check(model, records, pin, flips=flips, amp=amp)
    return cache
