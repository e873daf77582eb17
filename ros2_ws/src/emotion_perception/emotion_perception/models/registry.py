"""The registry of model profiles: one YAML file per profile in ``model_profiles/``, one factory.

A profile names a model kind (lite, zero_shot, ous, duse), its backbone and head settings, the
weight files it needs (relative to the weights directory) and the face detector it pairs with.
``build_model`` dispatches on the kind to ``emotion_perception.models.<module>.build``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).resolve().parents[1] / "model_profiles"

# kind -> module under emotion_perception.models that provides build(profile, weights_dir, device)
KIND_MODULES = {"lite": "lite", "zero_shot": "zero_shot", "ous": "ous", "duse": "duse"}


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str
    description: str = ""
    rank: int = 0  # `auto` picks the highest-ranked profile whose weights are present
    backbone: dict = field(default_factory=dict)  # model, pretrained, checkpoint, sha256
    head: dict = field(default_factory=dict)  # kind-specific settings (+ checkpoint, sha256)
    detector: dict = field(default_factory=dict)  # name + weight files for models.fetch
    window: int = 16
    scene_interval: int = 4
    test_only: bool = False  # tiny random-weight profiles: never chosen by `auto`
    path: Path | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Profile":
        path = Path(path)
        data = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - {f for f in cls.__dataclass_fields__ if f != "path"}
        if unknown:
            raise ValueError(f"{path}: unknown profile keys {sorted(unknown)}")
        for key in ("name", "kind"):
            if key not in data:
                raise ValueError(f"{path}: profile needs a {key!r}")
        if data["kind"] not in KIND_MODULES:
            raise ValueError(f"{path}: kind {data['kind']!r} is not one of {sorted(KIND_MODULES)}")
        return cls(path=path, **data)


def list_profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    profiles = {}
    for path in sorted(directory.glob("*.yaml")):
        profile = Profile.from_yaml(path)
        profiles[profile.name] = profile
    return profiles


def get_profile(name: str, directory: Path = PROFILE_DIR) -> Profile:
    profiles = list_profiles(directory)
    if name not in profiles:
        raise KeyError(f"unknown model profile {name!r}; available: {', '.join(sorted(profiles))}")
    return profiles[name]


def build_model(profile: Profile | str, device="cpu", weights_dir: Path | None = None, **options):
    """Create the EmotionModel a profile describes, on ``device``, from local weights.

    ``options`` go to the kind's ``build`` (e.g. ``load_head=False`` for training from scratch).
    """
    if isinstance(profile, str):
        profile = get_profile(profile)
    module = importlib.import_module(f"{__package__}.{KIND_MODULES[profile.kind]}")
    return module.build(profile, weights_dir, device, **options)
