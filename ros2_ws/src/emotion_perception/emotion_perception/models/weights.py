"""Weight files: where they live, how they are checked, and the one error for a missing one.

The model kinds (lite.py, zero_shot.py, checkpoint.py), the package detectors (faces/mtcnn.py,
faces/dlib_detectors.py) and models/fetch use these; the profile registry (registry.py), which
builds the kinds, is above them all.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsMissingError

WEIGHTS_ENV = "EMOTION_PERCEPTION_WEIGHTS"


def default_weights_dir() -> Path:
    """$EMOTION_PERCEPTION_WEIGHTS if set, else ~/.cache/emotion_perception/weights."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emotion_perception" / "weights"


def weights_dir_or_default(weights_dir: str | Path | None) -> Path:
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


def missing_weights_error(profile, weights_dir: str | Path | None = None):
    """One WeightsMissingError naming every missing file of ``profile`` and how to get it."""
    weights_dir = weights_dir_or_default(weights_dir)
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
