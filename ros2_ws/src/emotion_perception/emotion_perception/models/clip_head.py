"""What the trained CLIP heads (OUS, DuSE) share: a frozen backbone, its pixel normalisation, and
the canonical ordering of the valid frames of a window."""
from __future__ import annotations

import open_clip
import torch
from torch import nn

from .base import EmotionModel, normalize_pixels


# profile.head keys that locate the weight file rather than configure the head (models/README.md)
WEIGHT_FILE_KEYS = ("checkpoint", "sha256", "url", "hf_hub", "package_file", "how_to_get")


class ClipHeadModel(EmotionModel):
    """An EmotionModel with a frozen open_clip model under ``self.clip`` and a trainable head."""

    kind = ""
    frozen_prefixes = ("clip.",)  # what checkpoints leave out (see models.checkpoint)
    # Head settings that change the forward pass without changing any tensor's shape: a
    # checkpoint trained under other values is refused (models.checkpoint), not loaded with a warning.
    forward_keys: tuple[str, ...] = ()

    def __init__(self, clip: nn.Module, head_config: dict, model_id: str):
        super().__init__()
        self.clip = clip.eval().requires_grad_(False)
        self.model_id = model_id
        self.head_config = {k: v for k, v in head_config.items() if k not in WEIGHT_FILE_KEYS}
        size = clip.visual.image_size
        self.face_size = self.scene_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = open_clip.get_model_preprocess_cfg(clip)
        self._mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self._std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.eval()  # the backbone is frozen: no dropout / batch statistics of its own
        return self

    def pixels_to_input(self, pixels: torch.Tensor, size: int) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> normalised float NCHW on the model's device, or one clear error."""
        if pixels.dim() != 4 or pixels.shape[1:] != (size, size, 3) or pixels.dtype != torch.uint8:
            raise ValueError(
                f"{type(self).__name__} expects uint8 pixels [N, {size}, {size}, 3], "
                f"got {pixels.dtype} {tuple(pixels.shape)}"
            )
        device = self.clip.logit_scale.device
        return normalize_pixels(pixels.to(device, non_blocking=True), self._mean, self._std)


def valid_first(mask: torch.Tensor) -> torch.Tensor:
    """Per-row frame order [B, T] that puts the valid frames first, keeping their time order.

    Heads gather their windows with it so the answer depends only on the sequence of valid frames,
    not on where the padding sits (the engine's ring buffer fills from either end).
    """
    return torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices


def gather_frames(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """x [B, T, ...] reordered along T by order [B, T]."""
    index = order.view(*order.shape, *([1] * (x.dim() - 2))).expand(*order.shape, *x.shape[2:])
    return torch.gather(x, 1, index)


def check_window(name: str, x: torch.Tensor, mask: torch.Tensor, dim: int) -> None:
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"{name} must be [B, T, {dim}], got {tuple(x.shape)}")
    if mask.shape != x.shape[:2] or mask.dtype != torch.bool:
        expected, got = tuple(x.shape[:2]), f"{mask.dtype} {tuple(mask.shape)}"
        raise ValueError(f"{name} mask must be bool [B, T] = {expected}, got {got}")
