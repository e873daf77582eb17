"""DuSE: deep text–vision prompts on a frozen CLIP (HTPC) + temporal aggregation (LSEA).

HTPC: ``n_ctx`` (4) learnable text tokens at each of the first M text layers (``depth``:
'shallow' = 1, 'normal' = a third, 'deep' = two thirds of the layers; see prompts.py), followed
by the class name and, with ``descriptions`` (default on, as in the paper), a fixed sentence about
the class's facial movements. The vision prompts are ONE shared MLP applied to text prompt
tokens; they are appended to the ViT's token sequence before block 0 and overwrite the previous
prompt tokens before each later prompted block (kept after the last). ``vision_depth`` says how
many ViT blocks get prompts, which the paper leaves open (ViT-L/14 has 24 blocks, its text
encoder 12): 'text' (default) = M blocks, block i fed by text layer i — the one-to-one pairing
of "vision prompts produced from the text ones" that needs no further assumption; 'proportional'
= the same fraction of the ViT's blocks as M is of the text layers (8 of 24 for 'normal'), block
j fed by text layer j·M // V; an int = that many blocks, mapped the same way. The layer-0 vision
prompts get a sinusoidal encoding of the frame's position in the window. The ViT is run block by
block from open_clip's own modules (conv1, class/positional embeddings, ln_pre, ``resblocks``,
ln_post, proj); its weights stay frozen.
LSEA: temporal self-attention over the frame features → linear → attention pooling → N (4) heads
of text-guided aggregation, mixed β·video + (1−β)·text (β = 0.7), and a scaled cosine against the
class embeddings. ``lsea_mode`` picks the reading of the aggregation:
- 'paper' (default, Eqs. 12–13 as written): each head h has its own linear maps of the video and
  of the class texts (initialised to the identity), weights softmax over classes of the scaled
  cosine of the two, o_h = β·W_v^h video + (1−β)·Σ_c weight_c W_t^h text_c, and the heads are
  averaged;
- 'split' (this project's earlier reading): one linear query of the video, the heads are
  E/N-wide slices of the video and text embeddings, scaled dot-product softmax, the slices of
  Σ_c weight_c text_c concatenated, then β·video + (1−β)·that.

What can be cached per frame, precisely: the frame-position prompt enters at block 0, and a
frame's position changes every time the window slides, so the output of every ViT block depends
on where the frame sits in the window — nothing from block 0 on is reusable across windows. What
comes before block 0 — patch embedding, class token, positional embedding, ln_pre, which act on
each token alone — does not see the prompts, so ``encode_faces`` returns those tokens
([N, (1 + patches) · width], e.g. 257 × 1024 floats ≈ 1 MB per frame for ViT-L/14, ~7× the
uint8 crop) and ``forward_window`` runs all ViT blocks on every valid frame of the window.
It saves only the patch convolution (~0.2 % of ViT-L/14's FLOPs): a sliding-window prediction
costs T full ViT passes where OUS costs 1 + 1/k (the new face + the amortised scene);
benchmarks/duse_cache_cost.py measures it. A robot can cut the cost by predicting every T frames
(tumbling windows): then each frame is encoded once, but the answer lags by up to a window.
The class embeddings depend on no input and are cached while no gradient is needed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..labels import CLASS_NAMES
from .base import HeadOutput
from .checkpoint import load_backbone, load_head_weights
from .clip_head import ClipHeadModel, check_window, gather_frames, valid_first
from .prompts import PromptedTextEncoder

DEFAULTS = {
    "n_ctx": 4,
    "depth": "normal",
    "temporal_layers": 1,
    "heads": 8,
    "mlp_ratio": 4.0,
    "dropout": 0.1,
    "agg_heads": 4,
    "beta": 0.7,
    "descriptions": True,  # class description sentences after the learnable tokens (prompts.py)
    "vision_depth": "text",  # prompted ViT blocks: 'text' | 'proportional' | an int (module doc)
    "lsea_mode": "paper",  # text-guided aggregation: 'paper' | 'split' (module doc)
}
LSEA_MODES = ("paper", "split")


def vision_prompt_depth(setting, text_depth: int, text_layers: int, vision_layers: int) -> int:
    """Number of prompted ViT blocks for the ``vision_depth`` setting (see the module doc)."""
    if setting == "text":
        n = text_depth
    elif setting == "proportional":
        n = math.ceil(text_depth * vision_layers / text_layers)
    elif isinstance(setting, int) and not isinstance(setting, bool):
        n = setting
    else:
        raise ValueError(f"vision_depth must be 'text', 'proportional' or an int, got {setting!r}")
    if not 1 <= n <= vision_layers:
        raise ValueError(f"vision_depth {n} outside 1..{vision_layers} (the ViT's block count)")
    return n


def sinusoidal_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sin/cos encoding of integer positions [N] → [N, dim]."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angle = positions.float().unsqueeze(1) * freq
    enc = torch.cat([angle.sin(), angle.cos()], dim=1)
    return F.pad(enc, (0, dim - 2 * half))


def check_vision_tower(visual: nn.Module) -> None:
    """The block-by-block pass supports open_clip ViTs that pool the class token."""
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise ValueError("DuSE needs an open_clip ViT that pools its class token (no attentional pooler)")
    if not hasattr(visual, "conv1") or not hasattr(visual, "transformer"):
        raise ValueError(f"DuSE needs an open_clip VisionTransformer, got {type(visual).__name__}")


def vision_input_tokens(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Normalised pixels NCHW → the token sequence entering block 0 [N, 1 + patches, width]."""
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    return visual.ln_pre(visual.patch_dropout(x))


def prompted_image_features(visual: nn.Module, tokens: torch.Tensor, prompts: list[torch.Tensor]) -> torch.Tensor:
    """Run the ViT blocks with prompt tokens [N or 1, n, width] for the first len(prompts) blocks.

    Prompts are appended before block 0 and overwrite the previous prompt tokens before each later
    prompted block. Without prompts this equals ``visual(pixels)``.
    """
    n_tokens = tokens.shape[1]
    batch_first = getattr(visual.transformer, "batch_first", True)
    x = tokens
    for i, block in enumerate(visual.transformer.resblocks):
        if i < len(prompts):
            x = torch.cat([x[:, :n_tokens], prompts[i].expand(x.shape[0], -1, -1)], dim=1)
        x = block(x) if batch_first else block(x.transpose(0, 1)).transpose(0, 1)
    pooled = visual.ln_post(x[:, 0])
    return pooled @ visual.proj if visual.proj is not None else pooled


class DuSEModel(ClipHeadModel):
    kind = "duse"
    uses_scene = False
    forward_keys = ("descriptions", "vision_depth", "lsea_mode")

    def __init__(self, clip: nn.Module, tokenizer, head_config: dict | None = None, model_id: str = "duse"):
        cfg = {**DEFAULTS, **(head_config or {})}
        super().__init__(clip, cfg, model_id)
        visual = clip.visual
        check_vision_tower(visual)
        dim = visual.output_dim
        self.vision_width = visual.transformer.width
        grid = visual.positional_embedding.shape[0]  # class token + patches
        self.n_tokens = grid
        self.face_dim = grid * self.vision_width
        self.beta = float(cfg["beta"])
        self.agg_heads = int(cfg["agg_heads"])
        if dim % self.agg_heads:
            raise ValueError(f"agg_heads={self.agg_heads} must divide the embedding size {dim}")
        heads, drop = int(cfg["heads"]), float(cfg["dropout"])

        self.prompts = PromptedTextEncoder(clip, tokenizer, CLASS_NAMES, int(cfg["n_ctx"]), depth=cfg["depth"],
                                           descriptions=bool(cfg["descriptions"]))
        self.vision_depth = vision_prompt_depth(cfg["vision_depth"], self.prompts.depth, self.prompts.text_layers,
                                                len(visual.transformer.resblocks))
        # Text prompt layer feeding each prompted ViT block: j * M // V (identity when V == M).
        self.register_buffer("vision_source", torch.arange(self.vision_depth) * self.prompts.depth // self.vision_depth,
                             persistent=False)
        self.lsea_mode = str(cfg["lsea_mode"])
        if self.lsea_mode not in LSEA_MODES:
            raise ValueError(f"lsea_mode must be one of {LSEA_MODES}, got {self.lsea_mode!r}")
        text_width = self.prompts.width
        self.prompt_mlp = nn.Sequential(  # one MLP shared by all prompted layers: text → vision tokens
            nn.Linear(text_width, self.vision_width), nn.GELU(), nn.Linear(self.vision_width, self.vision_width)
        )
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * float(cfg["mlp_ratio"])), drop, activation="gelu", batch_first=True, norm_first=True
        )
        self.temporal = nn.TransformerEncoder(layer, int(cfg["temporal_layers"]), enable_nested_tensor=False)
        self.temporal_proj = nn.Linear(dim, dim)
        self.pool_score = nn.Linear(dim, 1, bias=False)  # a bias would cancel in the softmax
        if self.lsea_mode == "split":
            self.agg_query = nn.Linear(dim, dim)
        else:  # per-head maps of video and text, identity at the start; per-head cosine scale
            h = self.agg_heads
            self.agg_video = nn.Linear(dim, h * dim)
            self.agg_text = nn.Linear(dim, h * dim)
            with torch.no_grad():
                for layer in (self.agg_video, self.agg_text):
                    layer.weight.copy_(torch.eye(dim).repeat(h, 1))
                    layer.bias.zero_()
            self.agg_log_scale = nn.Parameter(torch.full((h,), math.log(1 / 0.07)))  # CLIP's initial scale

    @torch.no_grad()
    def encode_faces(self, pixels: torch.Tensor) -> torch.Tensor:
        """Face crops → the prompt-independent tokens before ViT block 0, flattened (see module doc)."""
        return vision_input_tokens(self.clip.visual, self.pixels_to_input(pixels, self.face_size)).flatten(1)

    def vision_prompts(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """Prompt tokens per prompted ViT block; block 0's carry each frame's position [N]."""
        prompts = self.prompt_mlp(self.prompts.ctx[self.vision_source])  # [V, n, width]
        first = prompts[0] + sinusoidal_encoding(positions, self.vision_width).unsqueeze(1)
        return [first] + [p.unsqueeze(0) for p in prompts[1:]]

    def frame_features(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, face_dim] tokens of a valid-first window → [B, T, E]; padded frames stay zero."""
        b, t = mask.shape
        flat = mask.flatten()
        positions = torch.arange(t, device=mask.device).expand(b, t).flatten()[flat]
        frames = tokens.flatten(0, 1)[flat].unflatten(-1, (self.n_tokens, self.vision_width))
        feats = prompted_image_features(self.clip.visual, frames, self.vision_prompts(positions))
        out = feats.new_zeros(b * t, feats.shape[-1])
        out[flat] = feats
        return out.view(b, t, -1)

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None) -> HeadOutput:
        check_window("faces", faces, face_mask, self.face_dim)
        order = valid_first(face_mask)
        mask = gather_frames(face_mask, order)
        mask[:, 0] = True  # a window without valid frames still yields (meaningless) finite logits
        x = self.frame_features(gather_frames(faces, order), mask)

        x = self.temporal_proj(self.temporal(x, src_key_padding_mask=~mask))
        scores = self.pool_score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        video = F.normalize((scores.softmax(1).unsqueeze(-1) * x).sum(1), dim=-1)  # [B, E]

        text = F.normalize(self.prompts(), dim=-1)  # [C, E]
        aggregate = self.paper_aggregation if self.lsea_mode == "paper" else self.split_aggregation
        mixed = aggregate(video, text)

        scale = self.clip.logit_scale.exp()
        logits = scale * F.normalize(mixed, dim=-1) @ text.t()
        return HeadOutput(logits=logits, aux={"video": mixed})


    def split_aggregation(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """'split' LSEA: heads are slices of one video query and of the texts, concatenated."""
        b, c, e = video.shape[0], text.shape[0], video.shape[1]
        h, d = self.agg_heads, e // self.agg_heads
        query = self.agg_query(video).view(b, h, d)
        keys = (text * math.sqrt(e)).view(c, h, d)  # unit text scaled to ~unit entries, like LN output
        weights = torch.einsum("bhd,chd->bhc", query, keys).div(math.sqrt(d)).softmax(-1)
        guided = torch.einsum("bhc,chd->bhd", weights, text.view(c, h, d)).reshape(b, e)
        return self.beta * video + (1.0 - self.beta) * guided

    def paper_aggregation(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """'paper' LSEA (Eqs. 12–13): per-head maps, cosine softmax, β inside each head, head mean."""
        b, c, e = video.shape[0], text.shape[0], video.shape[1]
        h = self.agg_heads
        v = self.agg_video(video).view(b, h, e)
        t = self.agg_text(text).view(c, h, e).transpose(0, 1)  # [H, C, E]
        cosine = torch.einsum("bhe,hce->bhc", F.normalize(v, dim=-1), F.normalize(t, dim=-1))
        weights = (cosine * self.agg_log_scale.clamp(max=math.log(100.0)).exp().view(1, h, 1)).softmax(-1)
        guided = torch.einsum("bhc,hce->bhe", weights, t)
        return (self.beta * v + (1.0 - self.beta) * guided).mean(1)


def build(profile, weights_dir=None, device="cpu", *, load_head: bool = True) -> DuSEModel:
    """The DuSE model of a profile on ``device``; with ``load_head`` the profile's head checkpoint."""
    clip, tokenizer = load_backbone(profile, weights_dir, device)
    model = DuSEModel(clip, tokenizer, profile.head, model_id=profile.name).to(device)
    if load_head:
        load_head_weights(model, profile, weights_dir)
    return model.eval()
