"""OUS: scene-guided dynamic facial expression recognition on a frozen CLIP (docs/DESIGN.md, "The models").

Per-frame features (cached by the streaming engine, each frame encoded once):
- face: the CLIP image embedding (after the projection, ``embed_dim``: 768 for ViT-L/14), the
  space the class prompts live in;
- scene: the CLIP image embedding followed by the class tokens after each of the first
  ``early_blocks`` (4) ViT blocks (``width`` each, un-normalised residual stream), flattened:
  ``embed_dim + 4 * width`` values. Both come from one pass of the encoder.

``forward_window`` (trainable): LSTM early fusion of face and scene per frame → Frame Encoder
(temporal transformer, learned frame positions, key-padding mask) → masked mean; scene = masked
frame mean; a shared conv + FC aligner maps face and scene into one space (similarity loss);
the Polarity Encoder reads the early-block tokens → 3-way polarity logits and a polarity token;
the Type Fusion Encoder cross-attends learnable Gaussian queries (one set shared by all blocks,
added to each block's query input) to the LayerNormed face, scene and polarity tokens; the mean
of its outputs is compared by scaled cosine with CoOp class embeddings.

Windows are reordered so valid frames come first (see ``clip_head.valid_first``). A scene window
with the face window's length is fused frame by frame (frames without a valid scene use the mean
scene); a scene window of another length is fused through its mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..labels import CLASS_NAMES, POLARITIES
from .base import HeadOutput, masked_mean
from .checkpoint import load_backbone, load_head_weights
from .clip_head import ClipHeadModel, check_window, gather_frames, valid_first
from .prompts import PromptedTextEncoder

DEFAULTS = {
    "early_blocks": 4,  # ViT blocks whose class tokens feed the Polarity Encoder
    "frame_layers": 2,  # Frame Encoder depth
    "heads": 8,
    "mlp_ratio": 4.0,
    "dropout": 0.1,
    "max_frames": 32,  # learned frame positions: longest window the head accepts
    "align_channels": 4,
    "tfe_blocks": 12,
    "queries": 8,
    "n_ctx": 64,  # CoOp context tokens
    "alpha": 1.0,  # losses.AlphaSwitchCriterion threshold on the running contrastive loss
    "descriptions": False,  # class description sentences after the CoOp tokens (prompts.py); the
    # OUS paper has none, and with its 64 tokens they would not fit CLIP's 77-token context
}


class Aligner(nn.Module):
    """Conv + FC over a feature vector, residual: maps face and scene into one space."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(1, channels, kernel_size=3, padding=1)
        self.fc = nn.Linear(channels * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(F.relu(self.conv(x.unsqueeze(1))).flatten(1))


class PolarityEncoder(nn.Module):
    """Early-block class tokens [B, K, W] → polarity token [B, E] and logits [B, 3]."""

    def __init__(self, width: int, dim: int, blocks: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)
        self.block_embed = nn.Parameter(torch.randn(blocks, dim) * 0.02)
        self.mix = nn.Sequential(nn.Linear(blocks * dim, dim), nn.GELU(), nn.Dropout(dropout), nn.LayerNorm(dim))
        self.classify = nn.Linear(dim, len(POLARITIES))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.proj(self.norm(tokens)) + self.block_embed
        feature = self.mix(x.flatten(1))
        return feature, self.classify(feature)


class FusionBlock(nn.Module):
    """Cross-attention of queries to LayerNormed key/value tokens, LayerNorm → MLP(ReLU) → LayerNorm."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, queries: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(kv)
        x = self.norm1(x + self.attn(x + queries, kv, kv, need_weights=False)[0])
        return self.norm2(x + self.mlp(x))


class TypeFusionEncoder(nn.Module):
    def __init__(self, dim: int, blocks: int, queries: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, dim))  # Gaussian init, shared by all blocks
        self.blocks = nn.ModuleList(FusionBlock(dim, heads, mlp_ratio, dropout) for _ in range(blocks))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, E] → fused video feature [B, E]."""
        queries = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        x = torch.zeros_like(queries)
        for block in self.blocks:
            x = block(x, queries, tokens)
        return x.mean(1)


class OUSModel(ClipHeadModel):
    kind = "ous"
    uses_scene = True
    forward_keys = ("descriptions",)

    def __init__(self, clip: nn.Module, tokenizer, head_config: dict | None = None, model_id: str = "ous"):
        cfg = {**DEFAULTS, **(head_config or {})}
        super().__init__(clip, cfg, model_id)
        dim = clip.visual.output_dim
        width = clip.visual.transformer.width
        if cfg["early_blocks"] > len(clip.visual.transformer.resblocks):
            raise ValueError(f"early_blocks={cfg['early_blocks']} exceeds the ViT's depth")
        self.early_blocks = int(cfg["early_blocks"])
        self.width = width
        self.face_dim = dim
        self.scene_dim = dim + self.early_blocks * width
        heads, ratio, drop = int(cfg["heads"]), float(cfg["mlp_ratio"]), float(cfg["dropout"])

        self.fusion_lstm = nn.LSTM(2 * dim, dim, batch_first=True)
        self.frame_pos = nn.Parameter(torch.randn(int(cfg["max_frames"]), dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * ratio), drop, activation="gelu", batch_first=True, norm_first=True
        )
        self.frame_encoder = nn.TransformerEncoder(
            layer, int(cfg["frame_layers"]), norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.align = Aligner(dim, int(cfg["align_channels"]))
        self.polarity = PolarityEncoder(width, dim, self.early_blocks, drop)
        self.tfe = TypeFusionEncoder(dim, int(cfg["tfe_blocks"]), int(cfg["queries"]), heads, ratio, drop)
        self.prompts = PromptedTextEncoder(clip, tokenizer, CLASS_NAMES, int(cfg["n_ctx"]), depth=1,
                                           descriptions=bool(cfg["descriptions"]))

    @torch.no_grad()
    def encode_faces(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.clip.visual(self.pixels_to_input(pixels, self.face_size))

    @torch.no_grad()
    def encode_scenes(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.clip.visual.forward_intermediates(
            self.pixels_to_input(pixels, self.scene_size),
            indices=list(range(self.early_blocks)),
            output_fmt="NLC",
            output_extra_tokens=True,
        )
        early = torch.cat(out["image_intermediates_prefix"], dim=1)  # [N, K, W]
        return torch.cat([out["image_features"], early.flatten(1)], dim=1)

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None) -> HeadOutput:
        if scenes is None:
            raise ValueError("OUS needs scene features: pass encode_scenes() windows to forward_window")
        check_window("faces", faces, face_mask, self.face_dim)
        if scene_mask is None:
            scene_mask = torch.ones(scenes.shape[:2], dtype=torch.bool, device=scenes.device)
        check_window("scenes", scenes, scene_mask, self.scene_dim)
        b, t, dim = faces.shape
        if t > self.frame_pos.shape[0]:
            raise ValueError(f"window of {t} frames exceeds max_frames={self.frame_pos.shape[0]}")

        scene_emb = scenes[..., :dim]
        early = scenes[..., dim:].unflatten(-1, (self.early_blocks, self.width))
        scene = masked_mean(scene_emb, scene_mask)

        order = valid_first(face_mask)
        mask = gather_frames(face_mask, order)
        faces = gather_frames(faces, order)
        if scenes.shape[1] == t:
            per_frame = torch.where(scene_mask.unsqueeze(-1), scene_emb, scene.unsqueeze(1))
            per_frame = gather_frames(per_frame, order)
        else:
            per_frame = scene.unsqueeze(1).expand(b, t, dim)

        lengths = mask.sum(1).clamp_min(1)
        packed = pack_padded_sequence(
            torch.cat([faces, per_frame], dim=-1), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        mixed, _ = pad_packed_sequence(self.fusion_lstm(packed)[0], batch_first=True, total_length=t)
        x = faces + mixed + self.frame_pos[:t]
        padding = ~mask
        padding[:, 0] = False  # a window without valid frames must not turn attention into NaN
        x = self.frame_encoder(x, src_key_padding_mask=padding)
        face = self.align(masked_mean(x, mask))
        scene = self.align(scene)

        polarity_token, polarity_logits = self.polarity(masked_mean(early, scene_mask))
        video = self.tfe(torch.stack([face, scene, polarity_token], dim=1))
        text = self.prompts()
        scale = self.clip.logit_scale.exp()
        logits = scale * F.normalize(video, dim=-1) @ F.normalize(text, dim=-1).t()
        return HeadOutput(logits=logits, polarity_logits=polarity_logits, aux={"face": face, "scene": scene})


def build(profile, weights_dir=None, device="cpu", *, load_head: bool = True) -> OUSModel:
    """The OUS model of a profile on ``device``; with ``load_head`` the profile's head checkpoint."""
    clip, tokenizer = load_backbone(profile, weights_dir, device)
    model = OUSModel(clip, tokenizer, profile.head, model_id=profile.name).to(device)
    if load_head:
        load_head_weights(model, profile, weights_dir)
    return model.eval()
