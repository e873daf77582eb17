"""One call from a profile name to a ready engine: model, face detector and engine settings.

The profile decides the model, the window, the scene interval and the detector it was tuned
with. A detector that cannot be built here (weights absent, package not installed) gives way to
the profile's ``detector.fallback`` list in order, and on a CPU-only machine finally to OpenCV's
cascade (which ships with OpenCV); the returned choice says which and why. On CUDA a profile
without fallbacks whose detector file is missing is an error, since that machine is expected to
have been provisioned with ``models/fetch``.
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
from .persons import PersonIdentifier, create_embedder
from .models.weights import weights_dir_or_default

log = logging.getLogger(__name__)

FALLBACK_DETECTOR = "opencv"


def detector_order(detector, profile, device) -> list[str]:
    """Detector names to try, best first: ``detector`` alone when named by the caller; else the
    profile's detector, its ``fallback`` list, and on CPU OpenCV's cascade last."""
    if detector is not None:
        return [detector]
    spec = profile.detector or {}
    names = [spec.get("name") or FALLBACK_DETECTOR, *(spec.get("fallback") or [])]
    if device.type == "cpu":
        names.append(FALLBACK_DETECTOR)
    return list(dict.fromkeys(names))


def make_detector(detector, profile, device, weights_dir: Path | None = None, min_score: float | None = None):
    """(detector, note): ``detector`` as given if it has ``detect``; else the first of
    ``detector_order`` that can be built here (the profile's own detector gets its settings and
    weight files under ``weights_dir``). ``note`` says which detectors were unavailable and why
    (empty when the first choice was built); the choice is logged either way. ``min_score``
    (None: the profile's or the detector's default) drops weaker detections."""
    if callable(getattr(detector, "detect", None)):
        return detector, ""
    spec = dict(profile.detector or {})

    def build(name):
        options = {}
        if name == spec.get("name"):  # the profile's own detector: its settings and weight files
            options = {k: v for k, v in spec.items() if k not in ("name", "files", "fallback", "interval_s")}
            options.update(profile.detector_paths(weights_dir))
        if min_score is not None:
            options["min_score"] = min_score
        return create_detector(name, device=str(device), **options)

    def chosen(built, skipped):
        if not skipped:
            log.info("face detector %r: first choice of %s, available here", built.name, profile.name)
            return built, ""
        note = f"face detector {'; '.join(skipped)}; using {built.name!r}"
        log.warning(note)
        return built, note

    *preferred, last = detector_order(detector, profile, device)
    skipped = []
    for name in preferred:
        try:
            return chosen(build(name), skipped)
        except (FileNotFoundError, ImportError) as err:  # WeightsMissingError is a FileNotFoundError
            skipped.append(f"{name!r} unavailable ({err})")
    return chosen(build(last), skipped)


def make_redetector(detector, device):
    """(re-detector, note): what re-finds tracked faces between whole-frame searches
    (``PerceptionEngine``): the detector itself if it can, else MTCNN's last two stages from the
    facenet-pytorch wheel; (None, why) when neither is there, and then every frame is searched."""
    if callable(getattr(detector, "redetect", None)):
        return detector, ""
    try:
        return create_detector("mtcnn", device=str(device)), ""
    except (FileNotFoundError, ImportError) as err:
        note = f"no re-detector ({err}): the whole frame is searched on every frame"
        log.warning(note)
        return None, note


def make_identifier(gallery=None):
    """(PersonIdentifier, "") where the face-embedding model can run here, else (None, why not)."""
    embedder, note = create_embedder()
    if embedder is None:
        log.warning(note)
        return None, note
    return PersonIdentifier(embedder, gallery), ""


def select(profile: str, weights_dir, device):
    """registry.select_profile, except that on CPU a named profile whose only missing files are
    its detector's is still chosen: ``make_detector`` then falls back to OpenCV."""
    try:
        return registry.select_profile(profile, weights_dir, device=str(device))
    except WeightsMissingError:
        if profile == "auto" or device.type != "cpu":
            raise
        chosen = registry.get_profile(profile)
        root = weights_dir_or_default(weights_dir)
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
    identity: bool = True,
    *,
    gallery=None,
    **config_overrides,
):
    """(PerceptionEngine, ProfileChoice) for a profile name or "auto".

    ``precision`` None: fp16 on CUDA, fp32 on CPU. ``detector``: None (the profile's), a name
    ("opencv", "blazeface", "blazeface_back", "sfd") or an object with ``detect(rgb)``.
    ``min_face_score`` overrides the detector's score threshold.
    ``threads`` (None: the profile's default for the device; 0: leave them as they are) sets
    torch's and OpenCV's CPU threads for the whole process (engine/threads.py).
    ``identity``: re-identify persons across absences (``persons/``; estimates get a
    ``person_id``) where dlib and its model files are installed; where not, the choice's reason
    says so and consumers fall back to face track ids. ``gallery``: the ``PersonGallery`` to
    use (None: a new one in memory, for this process only).
    ``config_overrides`` are EngineConfig fields (window, scene_interval, max_faces, ...); every
    argument but ``gallery`` is a row of settings.SETTINGS, where None means "not set".
    """
    dev = resolve_device(device)
    choice = select(profile, weights_dir, dev)
    model = registry.build_model(choice.profile, str(dev), choice.weights_dir)
    det, note = make_detector(detector, choice.profile, dev, choice.weights_dir, min_face_score)
    settings = {
        "window": choice.profile.window,
        "scene_interval": choice.profile.scene_interval,
        "detect_interval_s": float((choice.profile.detector or {}).get("interval_s", 0.0)),
        **choice.profile.crop_settings(getattr(det, "name", None)),
        **choice.profile.engine,
        "precision": precision or choice.profile.engine.get("precision") or ("fp16" if dev.type == "cuda" else "fp32"),
        "threads": threads if threads is not None else choice.profile.threads_for(dev.type),
        "temperature": float((choice.profile.calibration or {}).get("temperature", 1.0)),
        **config_overrides,
        "device": str(dev),
    }
    redetector = None
    if settings["detect_interval_s"] > 0:
        redetector, redetect_note = make_redetector(det, dev)
        note = "; ".join(n for n in (note, redetect_note) if n)
    identifier = None
    if identity:
        identifier, identity_note = make_identifier(gallery)
        note = "; ".join(n for n in (note, identity_note) if n)
    if note:
        choice = replace(choice, reason=f"{choice.reason}; {note}")
    engine = PerceptionEngine(model, det, EngineConfig(**settings), redetector, identifier)
    log.info("engine: %s on %s (%s), %s", engine.model_id, dev, settings["precision"], choice.reason)
    return engine, choice
