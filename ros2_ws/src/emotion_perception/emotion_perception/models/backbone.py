"""The frozen CLIP backbone, created through open_clip from local weights.

A robot runs offline, so a checkpoint *file* is the normal case; a pretrained tag (which open_clip
downloads from the hub) only works on a machine with internet and is what ``models/fetch`` uses.
Tiny configs under ``configs/`` (random weights) are registered with open_clip for tests.
"""
from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from torch import nn

from ..errors import WeightsMissingError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
_registered = False


def register_configs() -> None:
    """Make the project's model configs (tiny test configs) known to open_clip, once."""
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def create_clip(
    model_name: str,
    checkpoint: str | Path | None = None,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, object]:
    """Create a frozen open_clip model and its tokenizer.

    ``checkpoint`` (a local file) wins over ``pretrained`` (a hub tag). With neither, the weights
    are random: only meant for the tiny test configs. OpenAI weights were trained with QuickGELU,
    so their model names must be the ``-quickgelu`` variants or accuracy silently drops.
    """
    register_configs()
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise WeightsMissingError(
                checkpoint, f"Download it on a machine with internet: models/fetch --model {model_name}"
            )
        source: str | None = str(checkpoint)
    else:
        source = pretrained
    if pretrained == "openai" and "quickgelu" not in model_name.lower():
        raise ValueError(f"OpenAI CLIP weights need the QuickGELU variant: use {model_name}-quickgelu")
    model = open_clip.create_model(model_name, pretrained=source, device=device)
    model.eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model_name)
    log.info("created CLIP %s from %s", model_name, source or "random weights")
    return model, tokenizer


def early_block_tokens(visual: nn.Module, pixels: torch.Tensor, n_blocks: int = 4) -> torch.Tensor:
    """Class tokens after each of the first ``n_blocks`` ViT blocks: [N, n_blocks, width].

    The OUS polarity encoder reads these (colour, texture, ambience live in early blocks).
    """
    out = visual.forward_intermediates(
        pixels,
        indices=list(range(n_blocks)),
        stop_early=True,
        intermediates_only=True,
        output_fmt="NLC",
        output_extra_tokens=True,
    )
    cls = [prefix[:, 0] for prefix in out["image_intermediates_prefix"]]
    return torch.stack(cls, dim=1)
