"""The interface between emotion models and the streaming engine / training loops.

A model works in two stages so that the engine can cache per-frame work:

1. ``encode_faces`` / ``encode_scenes`` turn single frames (uint8 NHWC pixels, already resized to
   ``face_size`` / ``scene_size`` and moved to the model's device) into fixed-size vectors. The
   engine keeps these in per-track ring buffers and encodes every frame once.
2. ``forward_window`` turns windows of those vectors ([B, T, D] plus a validity mask) into class
   logits in canonical order, and, for scene-aware models, scene-polarity logits.

Training runs the very same two stages on whole clips (``forward``), so streaming and clip
inference give the same answer for the same frames. A model whose per-frame work cannot be cached
(e.g. prompts that depend on a frame's position in the window) returns its normalised pixels from
``encode_faces`` and does the encoding inside ``forward_window``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..labels import NUM_CLASSES


@dataclass
class HeadOutput:
    logits: torch.Tensor  # [B, NUM_CLASSES], canonical class order
    polarity_logits: torch.Tensor | None = None  # [B, 3]: negative, neutral, positive
    aux: dict[str, torch.Tensor] = field(default_factory=dict)  # training-only terms


class EmotionModel(nn.Module):
    """Base class of every emotion model (lite, zero-shot, OUS, DuSE)."""

    model_id: str = ""
    uses_scene: bool = False
    face_size: int = 224  # square input side of face crops, pixels
    scene_size: int = 224
    num_classes: int = NUM_CLASSES

    def encode_faces(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, S, S, 3] uint8 face crops -> [N, face_dim] per-frame features."""
        raise NotImplementedError

    def encode_scenes(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, S, S, 3] uint8 scene images -> [N, scene_dim] per-frame features."""
        raise NotImplementedError(f"{type(self).__name__} does not use the scene")

    def forward_window(
        self,
        faces: torch.Tensor,
        face_mask: torch.Tensor,
        scenes: torch.Tensor | None = None,
        scene_mask: torch.Tensor | None = None,
    ) -> HeadOutput:
        """Windows of per-frame features -> logits. Masks are [B, T] bool, True = real frame."""
        raise NotImplementedError

    def forward(
        self,
        face_clips: torch.Tensor,
        mask: torch.Tensor,
        scene_clips: torch.Tensor | None = None,
    ) -> HeadOutput:
        """Whole clips ([B, T, S, S, 3] uint8, mask [B, T]) -> logits; the training path."""
        b, t = face_clips.shape[:2]
        faces = self.encode_faces(face_clips.flatten(0, 1)).unflatten(0, (b, t))
        scenes = None
        if self.uses_scene and scene_clips is not None:
            scenes = self.encode_scenes(scene_clips.flatten(0, 1)).unflatten(0, (b, t))
        return self.forward_window(faces, mask, scenes, mask if scenes is not None else None)


def normalize_pixels(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 NHWC -> float NCHW normalised with per-channel mean/std (done on the device)."""
    x = pixels.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of [B, T, ...] counting only frames where mask [B, T] is True."""
    w = mask.to(x.dtype).view(*mask.shape, *([1] * (x.dim() - 2)))
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)
