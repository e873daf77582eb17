"""One call from a profile name to a ready engine: model, face detector and engine settings.

The profile decides the model, the window, the scene interval and the detector it was tuned
with. On a CPU-only machine a neural detector whose weights are missing falls back to OpenCV's
cascade (which ships with OpenCV), and the returned choice says so; on CUDA a missing detector
file is an error, since that machine is expected to have been provisioned with ``models/fetch``.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .engine import EngineConfig, PerceptionEngine
from .engine.device import resolve_device
from .errors import WeightsMissingError
from .faces import create_detector
from .models import registry

log = logging.getLogger(__name__)

FALLBACK_DETECTOR = "opencv"


def make_detector(detector, profile, device, weights_dir: Path | None = None, min_score: float | None = None):
    """(detector, note): ``detector`` as given if it has ``detect``; else built by name (None: the
    profile's, with its weight files under ``weights_dir``). ``note`` explains a fallback to
    OpenCV on CPU when the profile's detector cannot be built here, or is empty. ``min_score``
    (None: the profile's or the detector's default) drops weaker detections."""
    if callable(getattr(detector, "detect", None)):
        return detector, ""
    spec = dict(profile.detector or {})
    name = detector or spec.get("name") or FALLBACK_DETECTOR
    options = {}
    if name == spec.get("name"):  # the profile's own detector: its settings and weight files
        options = {k: v for k, v in spec.items() if k not in ("name", "files")}
        options.update(profile.detector_paths(weights_dir))
    if min_score is not None:
        options["min_score"] = min_score
    try:
        return create_detector(name, device=str(device), **options), ""
    except (FileNotFoundError, ImportError) as err:  # WeightsMissingError is a FileNotFoundError
        if detector is not None or device.type != "cpu" or name == FALLBACK_DETECTOR:
            raise
        note = f"face detector {name!r} unavailable ({err}); using {FALLBACK_DETECTOR!r} on CPU"
        log.warning(note)
        extra = {} if min_score is None else {"min_score": min_score}
        return create_detector(FALLBACK_DETECTOR, device="cpu", **extra), note


def select(profile: str, weights_dir, device):
    """registry.select_profile, except that on CPU a named profile whose only missing files are
    its detector's is still chosen: ``make_detector`` then falls back to OpenCV."""
    try:
        return registry.select_profile(profile, weights_dir, device=str(device))
    except WeightsMissingError:
        if profile == "auto" or device.type != "cpu":
            raise
        chosen = registry.get_profile(profile)
        root = Path(weights_dir).expanduser() if weights_dir is not None else registry.default_weights_dir()
        if any(not f.role.startswith("detector.") for f in chosen.missing_files(root)):
            raise
        return registry.ProfileChoice(chosen, f"chose {chosen.name}: requested by name", root)


def create_engine(
    profile: str = "auto",
    device: str = "auto",
    precision: str | None = None,
    detector=None,
    weights_dir: str | Path | None = None,
    min_face_score: float | None = None,
    threads: int | None = None,
    **config_overrides,
):
    """(PerceptionEngine, ProfileChoice) for a profile name or "auto".

    ``precision`` None: fp16 on CUDA, fp32 on CPU. ``detector``: None (the profile's), a name
    ("opencv", "blazeface", "blazeface_back", "sfd") or an object with ``detect(rgb)``.
    ``min_face_score`` overrides the detector's score threshold.
    ``threads`` (None or 0: the profile's default for the device) sets torch's and OpenCV's CPU
    threads for the whole process (engine/threads.py).
    ``config_overrides`` are EngineConfig fields (window, scene_interval, max_faces, ...).
    """
    dev = resolve_device(device)
    choice = select(profile, weights_dir, dev)
    model = registry.build_model(choice.profile, str(dev), choice.weights_dir)
    det, note = make_detector(detector, choice.profile, dev, choice.weights_dir, min_face_score)
    if note:
        choice = replace(choice, reason=f"{choice.reason}; {note}")
    settings = {
        "window": choice.profile.window,
        "scene_interval": choice.profile.scene_interval,
        **choice.profile.crop_settings(),
        "precision": precision or ("fp16" if dev.type == "cuda" else "fp32"),
        "threads": threads or choice.profile.threads_for(dev.type),
        **config_overrides,
        "device": str(dev),
    }
    engine = PerceptionEngine(model, det, EngineConfig(**settings))
    log.info("engine: %s on %s (%s), %s", engine.model_id, dev, settings["precision"], choice.reason)
    return engine, choice
