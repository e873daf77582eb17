"""The training config file (YAML): model profile, dataset, optimisation settings.

Defaults are the OUS paper's: Adam, lr 2e-3, batch 16, 60 epochs, learning rate divided by 3
after 5 epochs without validation improvement. Sections: ``dataset``, ``train``, ``augment``
(training/augment.py) and ``head`` (overrides of the profile's head settings: the model
switches, checked by the model). Unknown keys are an error (a typo must not silently fall back
to a default).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .augment import AugmentConfig


class ConfigError(ValueError):
    """The config file is missing, malformed or holds unknown keys."""


@dataclass
class DatasetConfig:
    kind: str = "dfew"  # dfew | ferv39k
    root: str = ""
    fold: int | None = None  # DFEW: 1..5
    num_frames: int | None = None  # None: the profile's window
    val_fraction: float = 0.1  # carved, stratified, from the training list
    # Reader options (see training.datasets): override the standard layout's folders/files.
    clips_root: str | None = None  # DFEW frames
    faces_root: str | None = None  # FERV39k face crops
    scenes_root: str | None = None  # scene frames (FERV39k; DFEW: folders named like clip_224x224's)
    prepared_root: str | None = None  # DFEW: output of `emotion-train prepare-dfew` (paired faces + scenes)
    scene_from_face: bool = False  # let a scene model see the face crop as its scene (no scene frames)
    train_split_file: str | None = None  # FERV39k
    test_split_file: str | None = None  # FERV39k
    feature_cache: str | None = None  # folder of `emotion-train cache` (frozen features; OUS, zero-shot)

    def reader_options(self, split: str) -> dict:
        """Keyword arguments for ``datasets.read_split`` for one split."""
        if self.kind == "dfew":
            opts = {"clips_root": self.clips_root, "scenes_root": self.scenes_root,
                    "prepared_root": self.prepared_root}
        else:
            split_file = self.train_split_file if split == "train" else self.test_split_file
            opts = {"faces_root": self.faces_root, "scenes_root": self.scenes_root, "split_file": split_file}
        return {k: v for k, v in opts.items() if v is not None}


@dataclass
class OptimConfig:
    epochs: int = 60
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.0
    plateau_patience: int = 5  # epochs without validation improvement before the LR drops
    plateau_factor: float = 1.0 / 3.0
    min_lr: float = 1e-6
    alpha: float | None = None  # loss-switch threshold; None keeps the model's default
    amp: bool = True  # mixed precision, CUDA only
    num_workers: int = 4
    grad_clip: float | None = None  # max global gradient norm of the head; None = no clipping
    warmup_epochs: float = 0.0  # linear LR warm-up over this many epochs (per step, on top of the schedule)
    select: str = "uar"  # validation metric that picks the best checkpoint: uar | war


@dataclass
class TrainConfig:
    profile: str = ""
    weights_dir: str | None = None
    device: str = "auto"  # auto: cuda when available
    seed: int = 0
    out: str = "runs/train"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # train-time, one draw per clip
    head: dict = field(default_factory=dict)  # overrides of the profile's head settings (model switches)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        data = dict(data)
        dataset = _section(DatasetConfig, data.pop("dataset", {}) or {}, f"{source}: dataset")
        train = _section(OptimConfig, data.pop("train", {}) or {}, f"{source}: train")
        augment = _section(AugmentConfig, data.pop("augment", {}) or {}, f"{source}: augment")
        head = data.pop("head", {}) or {}
        if not isinstance(head, dict):
            raise ConfigError(f"{source}: head: expected a mapping of head settings")
        cfg = _section(cls, data, source, dataset=dataset, train=train, augment=augment, head=dict(head))
        cfg.validate(source)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(data or {}, str(path))

    def validate(self, source: str) -> None:
        if not self.profile:
            raise ConfigError(f"{source}: 'profile' (a model profile name) is required")
        d, t = self.dataset, self.train
        if d.kind not in ("dfew", "ferv39k"):
            raise ConfigError(f"{source}: dataset.kind must be 'dfew' or 'ferv39k', got {d.kind!r}")
        if not d.root:
            raise ConfigError(f"{source}: dataset.root is required")
        if d.kind == "dfew" and d.fold not in (1, 2, 3, 4, 5):
            raise ConfigError(f"{source}: dataset.fold must be 1..5 for DFEW, got {d.fold!r}")
        if not 0.0 < d.val_fraction < 1.0:
            raise ConfigError(f"{source}: dataset.val_fraction must be in (0, 1), got {d.val_fraction}")
        if d.num_frames is not None and d.num_frames < 1:
            raise ConfigError(f"{source}: dataset.num_frames must be positive")
        for name in ("epochs", "batch_size"):
            if getattr(t, name) < 1:
                raise ConfigError(f"{source}: train.{name} must be at least 1")
        if t.lr <= 0:
            raise ConfigError(f"{source}: train.lr must be positive")
        if t.select not in ("uar", "war"):
            raise ConfigError(f"{source}: train.select must be 'uar' or 'war', got {t.select!r}")
        if not 0.0 < t.plateau_factor < 1.0:
            raise ConfigError(f"{source}: train.plateau_factor must be in (0, 1)")
        if t.warmup_epochs < 0:
            raise ConfigError(f"{source}: train.warmup_epochs must be >= 0")
        if t.grad_clip is not None and t.grad_clip <= 0:
            raise ConfigError(f"{source}: train.grad_clip must be positive (or null)")
        try:
            self.augment.validate("augment")
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def _section(cls, data: dict, source: str, **given):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping")
    known = {f.name for f in fields(cls)} - set(given)
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    types = {f.name: f.type for f in fields(cls)}
    values = {k: _coerce(v, types[k], f"{source}.{k}") for k, v in data.items()}
    return cls(**values, **given)


_CASTS = {"int": int, "float": float, "str": str}


def _coerce(value, type_name: str, where: str):
    """Cast a YAML scalar to the field's type (YAML reads ``2e-3`` as a string, for one)."""
    options = [t.strip() for t in str(type_name).split("|")]
    if value is None:
        if "None" in options:
            return None
        raise ConfigError(f"{where}: a value is required")
    if "bool" in options:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    for name in options:
        cast = _CASTS.get(name)
        if cast is None or (isinstance(value, bool) and cast is not str):
            continue
        try:
            out = cast(value)
        except (TypeError, ValueError):
            continue
        if cast is int and isinstance(value, float) and out != value:
            continue
        return out
    raise ConfigError(f"{where}: expected {type_name}, got {value!r}")
