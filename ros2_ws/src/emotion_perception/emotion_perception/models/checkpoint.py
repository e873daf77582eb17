"""Head checkpoints (only what training changed) and weight-file resolution for trained heads.

A checkpoint holds the trainable parameters and the persistent buffers outside the frozen CLIP
backbone — never the backbone itself, which the profile names separately — plus what is needed to
refuse a wrong pairing: the profile and model kind, the class order, the head configuration, and
the code version that wrote it. ``load_checkpoint`` checks all of them before touching the model
and reports every difference in one message.
"""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..labels import CLASS_NAMES
from .backbone import create_clip
from .weights import default_weights_dir, file_sha256, missing_weights_error

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FROZEN_PREFIXES = ("clip.",)  # state-dict prefix of the frozen backbone inside every head model


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the model it is being loaded into."""


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def code_version() -> str:
    commit = _git_commit()
    return f"{__version__}+g{commit}" if commit else __version__


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters + persistent buffers outside the frozen backbone, detached on CPU."""
    frozen = getattr(model, "frozen_prefixes", FROZEN_PREFIXES)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    state = {}
    for name, tensor in model.state_dict().items():
        outside = not name.startswith(frozen)
        if name in trainable or (name in buffers and outside):
            state[name] = tensor.detach().cpu().clone()
    return state


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    profile_name: str,
    *,
    epoch: int | None = None,
    metrics: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a head checkpoint. ``metrics``/``extra`` must hold plain Python values and tensors."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "profile": profile_name,
        "kind": getattr(model, "kind", type(model).__name__),
        "class_order": list(CLASS_NAMES),
        "code_version": code_version(),
        "head_config": dict(getattr(model, "head_config", {})),
        "state": trainable_state(model),
        "epoch": epoch,
        "metrics": dict(metrics or {}),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": dict(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def load_checkpoint(path: str | Path, model: nn.Module, profile_name: str | None = None) -> dict:
    """Load a head checkpoint into ``model`` after checking it belongs there; return its metadata.

    ``profile_name`` defaults to the model's ``model_id``. The metadata dict has ``epoch``,
    ``metrics``, ``optimizer`` (state dict, for resuming), ``extra``, ``profile``, ``kind``,
    ``code_version`` and ``head_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"head checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that is not a checkpoint of ours
        raise CheckpointMismatchError(f"{path} is not a readable head checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointMismatchError(f"{path}: checkpoint format {found!r}, expected {FORMAT_VERSION}")

    expected_profile = profile_name or getattr(model, "model_id", None)
    kind = getattr(model, "kind", type(model).__name__)
    problems = []
    if payload["kind"] != kind:
        problems.append(f"model kind is {payload['kind']!r}, this model is {kind!r}")
    if expected_profile and payload["profile"] != expected_profile:
        problems.append(f"profile is {payload['profile']!r}, expected {expected_profile!r}")
    if list(payload["class_order"]) != list(CLASS_NAMES):
        problems.append(f"class order {payload['class_order']} differs from {list(CLASS_NAMES)}")
    own = trainable_state(model)
    state = payload["state"]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        problems.append(f"missing tensors {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_short(unexpected)}")
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if shapes:
        problems.append(f"shape mismatch {_short(shapes)}")
    saved_config, own_config = payload.get("head_config", {}), dict(getattr(model, "head_config", {}))
    for key in getattr(model, "forward_keys", ()):
        if saved_config.get(key) != own_config.get(key):
            problems.append(f"head setting {key} is {saved_config.get(key)!r}, this model's is {own_config.get(key)!r}")
    config_diff = _dict_diff(saved_config, own_config)
    if problems:
        if config_diff:
            problems.append(f"head config differs ({config_diff})")
        writer = payload.get("code_version")
        raise CheckpointMismatchError(f"refusing to load {path} (written by {writer}): " + "; ".join(problems))
    if config_diff:
        log.warning("%s: head config differs from the model's (%s); loading anyway", path, config_diff)
    model.load_state_dict(state, strict=False)
    return {k: v for k, v in payload.items() if k != "state"}


def _short(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _dict_diff(saved: dict, current: dict) -> str:
    keys = sorted(set(saved) | set(current))
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k))


def resolve_weight(path: str | Path, weights_dir: str | Path | None, sha256: str | None = None) -> Path:
    """A profile's weight path: absolute as given, else relative to the weights directory
    (None = the registry's default). Checks the SHA-256 (or a published prefix) when given."""
    path = Path(path).expanduser()
    if not path.is_absolute():
        path = Path(weights_dir if weights_dir is not None else default_weights_dir()).expanduser() / path
    if sha256 and path.is_file():
        actual = file_sha256(path)
        if not actual.startswith(str(sha256).lower()):
            raise ValueError(f"{path}: SHA-256 {actual} does not match the profile's {sha256}; re-download it")
    return path


def load_backbone(profile, weights_dir=None, device="cpu"):
    """The frozen CLIP model + tokenizer a profile's ``backbone`` section names."""
    spec = profile.backbone
    if "model" not in spec:
        raise ValueError(f"profile {profile.name!r}: backbone needs a 'model' name")
    checkpoint = spec.get("checkpoint")
    if checkpoint:
        checkpoint = resolve_weight(checkpoint, weights_dir, spec.get("sha256"))
    return create_clip(spec["model"], checkpoint=checkpoint, pretrained=spec.get("pretrained"), device=device)


def load_head_weights(model: nn.Module, profile, weights_dir=None) -> dict | None:
    """Load the head checkpoint a profile names (if any) into ``model``; return its metadata."""
    checkpoint = profile.head.get("checkpoint")
    if not checkpoint:
        return None
    path = resolve_weight(checkpoint, weights_dir, profile.head.get("sha256"))
    if not path.is_file():
        raise missing_weights_error(profile, weights_dir)
    return load_checkpoint(path, model, profile.name)
