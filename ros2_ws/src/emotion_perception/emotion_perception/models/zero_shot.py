"""Zero-shot dual-stream CLIP: prompt-ensembled face classes, scene polarity as a prior.

Needs public CLIP weights only (no trained head), so it is the best model a robot can run before
anyone trains OUS or DuSE. Per frame, the frozen CLIP image encoder embeds the face crop and the
scene (unit vectors, cacheable by the engine). Per window:

1. face:  f = normalise(masked mean of face embeddings);  p_face = softmax(s · f·T_c)
   where T_c is class c's text embedding (mean of its normalised prompt embeddings,
   renormalised) and s CLIP's logit scale.
2. scene: e = normalise(masked mean of scene embeddings); p_pol = softmax(s · e·P_k) over the
   polarities k = negative, neutral, positive (prompt-ensembled the same way).
3. OUS's idea without training: scene polarity is a prior that re-weights an *ambiguous* face:

       p(c) ∝ p_face(c) · (1 + w · g · (3 · p_pol[pol(c)] − 1))

   with pol(c) the polarity of class c (labels.py), g = 1 − (top-1 − top-2 of p_face) the
   face's ambiguity in [0, 1], and w = ``head.prior_weight`` in [0, 1) (default 0.5).
   3·p_pol − 1 is the scene's evidence for a polarity relative to a uniform prior (0 when
   p_pol = 1/3, from −1 to +2), so each factor stays within [1 − w, 1 + 2w] and positive. A
   confident face (g ≈ 0) keeps its answer; a coin-flip face leans towards the scene's mood.

All text embeddings are computed once at build time (buffers); the text tower is then dropped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.model import get_model_preprocess_cfg

from ..labels import CLASS_NAMES, POLARITIES, POLARITY_OF_CLASS
from .backbone import create_clip
from .base import EmotionModel, HeadOutput, masked_mean, normalize_pixels
from .weights import missing_weights_error

# How each canonical class is phrased in a prompt.
CLASS_WORDS = {
    "happy": "happy",
    "sad": "sad",
    "neutral": "neutral",
    "angry": "angry",
    "surprise": "surprised",
    "disgust": "disgusted",
    "fear": "fearful",
}
FACE_TEMPLATES = (
    "a photo of a {} looking face.",
    "a close-up photo of a person feeling {}.",
    "a face that looks {}.",
    "a cropped photo of a {} person.",
    "a video frame of a {} face.",
    "the facial expression of a {} person.",
    "a blurry photo of a {} face.",
    "a portrait of someone who is {}.",
)
SCENE_PROMPTS = {
    "negative": (
        "a photo of a gloomy scene.",
        "a photo of a tense, threatening situation.",
        "a dark and depressing place.",
        "a photo of a sad event.",
        "a photo of people arguing.",
    ),
    "neutral": (
        "a photo of an ordinary everyday scene.",
        "a photo of a plain room.",
        "an unremarkable place on a normal day.",
        "a photo of people at work.",
    ),
    "positive": (
        "a photo of a cheerful scene.",
        "a photo of a happy celebration.",
        "a bright and pleasant place.",
        "a photo of people having fun together.",
    ),
}


def face_ambiguity(p: torch.Tensor) -> torch.Tensor:
    """1 − (top-1 − top-2 probability): 0 for a certain answer, 1 for a tie."""
    top2 = p.topk(2, dim=-1).values
    return 1.0 - (top2[..., 0] - top2[..., 1])


def apply_polarity_prior(
    p_face: torch.Tensor, p_pol: torch.Tensor, weight: float, polarity_of_class: torch.Tensor
) -> torch.Tensor:
    """Re-weight class distributions [B, C] by scene polarity distributions [B, 3] (module docstring)."""
    evidence = 3.0 * p_pol[:, polarity_of_class] - 1.0  # [B, C]
    factor = 1.0 + weight * face_ambiguity(p_face).unsqueeze(-1) * evidence
    p = p_face * factor
    return p / p.sum(-1, keepdim=True)


class ZeroShotCLIP(EmotionModel):
    """Frozen CLIP vision tower + fixed text embeddings; per-frame features are unit CLIP embeddings."""

    uses_scene = True

    def __init__(self, clip_model, tokenizer, model_id: str = "", prior_weight: float = 0.5,
                 face_templates=FACE_TEMPLATES, scene_prompts=SCENE_PROMPTS):
        super().__init__()
        if not 0.0 <= prior_weight < 1.0:
            raise ValueError(f"prior_weight must be in [0, 1), got {prior_weight}")
        self.model_id = model_id
        self.prior_weight = float(prior_weight)
        self.visual = clip_model.visual
        size = self.visual.image_size
        self.face_size = self.scene_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = get_model_preprocess_cfg(clip_model)
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        device = next(clip_model.parameters()).device

        face_texts = [[t.format(CLASS_WORDS[name]) for t in face_templates] for name in CLASS_NAMES]
        scene_texts = [list(scene_prompts[k]) for k in POLARITIES]
        groups = face_texts + scene_texts
        with torch.no_grad():
            emb = clip_model.encode_text(tokenizer([t for g in groups for t in g]).to(device))
        emb = F.normalize(emb.float(), dim=-1)
        means, start = [], 0
        for group in groups:  # prompt ensemble: mean of normalised embeddings, renormalised
            means.append(F.normalize(emb[start:start + len(group)].mean(0), dim=-1))
            start += len(group)
        text = torch.stack(means)
        self.register_buffer("class_text", text[: len(face_texts)].clone())  # [7, D]
        self.register_buffer("polarity_text", text[len(face_texts):].clone())  # [3, D]
        self.register_buffer("logit_scale", clip_model.logit_scale.detach().exp().float().reshape(()).clone())
        self.register_buffer("polarity_of_class", torch.as_tensor(POLARITY_OF_CLASS), persistent=False)

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() != 4 or pixels.shape[-1] != 3 or pixels.dtype != torch.uint8:
            raise ValueError(f"expected uint8 [N, H, W, 3] images, got {pixels.dtype} {tuple(pixels.shape)}")
        if tuple(pixels.shape[1:3]) != (self.face_size, self.face_size):
            raise ValueError(f"expected {self.face_size}x{self.face_size} images, got {tuple(pixels.shape[1:3])}")
        x = normalize_pixels(pixels, self.mean, self.std)
        dtype = next(self.visual.parameters()).dtype
        return F.normalize(self.visual(x.to(dtype)).float(), dim=-1)

    def encode_faces(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._embed(pixels)

    def encode_scenes(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._embed(pixels)

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None) -> HeadOutput:
        # A few tiny matmuls: kept in fp32 under the engine's fp16/bf16 autocast.
        with torch.autocast(faces.device.type, enabled=False):
            return self._window(faces.float(), face_mask, None if scenes is None else scenes.float(), scene_mask)

    def _window(self, faces, face_mask, scenes, scene_mask) -> HeadOutput:
        face = F.normalize(masked_mean(faces, face_mask), dim=-1)
        face_logits = self.logit_scale * face @ self.class_text.T
        if scenes is None:
            return HeadOutput(logits=face_logits)
        if scene_mask is None:
            scene_mask = torch.ones(scenes.shape[:2], dtype=torch.bool, device=scenes.device)
        scene = F.normalize(masked_mean(scenes, scene_mask), dim=-1)
        polarity_logits = self.logit_scale * scene @ self.polarity_text.T
        # Windows without a single scene frame get a uniform polarity: no prior, no re-weighting.
        has_scene = scene_mask.any(1, keepdim=True)
        polarity_logits = torch.where(has_scene, polarity_logits, torch.zeros_like(polarity_logits))
        p = apply_polarity_prior(
            face_logits.softmax(-1), polarity_logits.softmax(-1), self.prior_weight, self.polarity_of_class
        )
        return HeadOutput(logits=p.clamp_min(1e-12).log(), polarity_logits=polarity_logits)


def build(profile, weights_dir, device) -> ZeroShotCLIP:
    backbone = profile.backbone
    checkpoint = None
    if backbone.get("checkpoint"):
        weights = next(f for f in profile.weight_files(weights_dir) if f.role == "backbone")
        if not weights.present:
            raise missing_weights_error(profile, weights_dir)
        checkpoint = weights.path
    # no checkpoint file: a pretrained tag (downloads, so only online) or random weights (tiny tests)
    pretrained = None if checkpoint else backbone.get("pretrained")
    clip_model, tokenizer = create_clip(backbone["model"], checkpoint=checkpoint, pretrained=pretrained, device=device)
    head = profile.head
    return ZeroShotCLIP(
        clip_model,
        tokenizer,
        model_id=profile.name,
        prior_weight=head.get("prior_weight", 0.5),
        face_templates=tuple(head.get("face_templates", FACE_TEMPLATES)),
    ).to(device)
