"""Learnable text prompts through open_clip's frozen text transformer (CoOp and deep prompts).

A class prompt is the token sequence ``[SOT] X X ... X <class name> . [EOT]``; the embeddings at
the ``X`` positions are replaced by learnable context vectors. With ``descriptions`` a fixed
sentence about the class's facial movements follows the class name (``X X X X happy. The lip
corners ...``), as DuSE pairs its learnable tokens with "fixed prompt words that combine emotion
categories with descriptions of subtle facial expression changes". DuSE does not publish its
sentences: ``CLASS_DESCRIPTIONS`` are this project's, written in that style from the facial action
units commonly listed for each basic emotion (FACS), not the paper's text. With ``depth`` 1 this is CoOp
(prompts at the input only, used by OUS). With ``depth`` > 1 the context positions are overwritten
again before each of the first ``depth`` transformer blocks by that layer's own learnable tokens
(deep prompting, used by DuSE's HTPC, which also derives its vision prompts from these tokens).

The text tower is run block by block from open_clip's own modules (token embedding, positional
embedding, ``resblocks``, ``ln_final``, projection and ``text_global_pool``), so nothing of
open_clip is copied and its weights stay frozen. Class embeddings do not depend on the input, so
without autograd they are computed once and reused until a prompt parameter changes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from open_clip.transformer import text_global_pool
from torch import nn

CONTEXT_TOKEN = "X"

# This project's paper-style class descriptions (see the module doc); 14-21 BPE tokens each, so
# with DuSE's 4 context tokens a prompt stays far inside CLIP's 77-token context.
CLASS_DESCRIPTIONS = {
    "happy": "The lip corners pull up and back, the cheeks rise and the eyes narrow slightly.",
    "sad": "The inner brows rise and draw together, the eyelids droop and the lip corners turn down.",
    "neutral": "The face is relaxed, the brows level, the eyes calm and the mouth closed and still.",
    "angry": "The brows lower and pull together, the eyes glare and the lips press tight.",
    "surprise": "The brows shoot up, the eyes open wide and the jaw drops open.",
    "disgust": "The nose wrinkles, the upper lip rises and the cheeks push up.",
    "fear": "The brows rise and draw together, the upper eyelids lift and the lips stretch back.",
}


def class_prompts(class_names: Sequence[str], n_ctx: int, descriptions: bool = False) -> list[str]:
    """Prompt texts: n_ctx context placeholders, the class name, and optionally its description."""
    context = " ".join([CONTEXT_TOKEN] * n_ctx)
    if not descriptions:
        return [f"{context} {name}." for name in class_names]
    missing = [name for name in class_names if name not in CLASS_DESCRIPTIONS]
    if missing:
        raise ValueError(f"no description for classes {missing}")
    return [f"{context} {name}. {CLASS_DESCRIPTIONS[name]}" for name in class_names]


def prompt_depth(depth: str | int, layers: int) -> int:
    """Number of prompted layers: 'shallow' = input only, 'normal' = a third, 'deep' = two thirds."""
    if isinstance(depth, int):
        n = depth
    elif depth == "shallow":
        n = 1
    elif depth == "normal":
        n = math.ceil(layers / 3)
    elif depth == "deep":
        n = math.ceil(2 * layers / 3)
    else:
        raise ValueError(f"prompt depth must be 'shallow', 'normal', 'deep' or an int, got {depth!r}")
    if not 1 <= n <= layers:
        raise ValueError(f"prompt depth {n} outside 1..{layers} (the text encoder's layer count)")
    return n


class _TextTower:
    """The pieces of an open_clip text tower, for both CLIP (flattened) and CustomTextCLIP.

    Attributes are looked up on each use so they follow the model across ``.to(device)``.
    """

    def __init__(self, clip: nn.Module):
        text = getattr(clip, "text", None)
        self.src = text if text is not None else clip
        if getattr(self.src, "cls_emb", None) is not None:
            raise ValueError("text towers with an appended class token (CoCa) are not supported")
        self.pool_type = getattr(self.src, "pool_type", None) or getattr(clip, "text_pool_type", "argmax")
        self.eos_id = getattr(self.src, "eos_id", None) or getattr(clip, "text_eos_id", None)

    def __getattr__(self, name):  # token_embedding, positional_embedding, transformer, ...
        return getattr(self.__dict__["src"], name)

    @property
    def width(self) -> int:
        return self.src.token_embedding.weight.shape[1]

    @property
    def layers(self) -> int:
        return len(self.src.transformer.resblocks)


def _is_causal(mask: torch.Tensor | None, length: int) -> bool:
    if mask is None or mask.dim() != 2 or mask.shape[0] < length:
        return False
    upper = torch.ones_like(mask, dtype=torch.bool).triu(1)
    return bool(torch.isneginf(mask[upper]).all() and (mask[~upper] == 0).all())


def _pool_index(tokens: torch.Tensor, tower: _TextTower) -> torch.Tensor:
    """Position of the token open_clip pools for each prompt (EOT)."""
    if tower.pool_type == "eos":
        return (tokens == tower.eos_id).int().argmax(-1)
    return tokens.argmax(-1)


class PromptedTextEncoder(nn.Module):
    """Class embeddings [C, E] from learnable context tokens and the frozen CLIP text encoder."""

    def __init__(
        self,
        clip: nn.Module,
        tokenizer,
        class_names: Sequence[str],
        n_ctx: int,
        depth: str | int = 1,
        init_std: float = 0.02,
        descriptions: bool = False,
    ):
        super().__init__()
        tower = _TextTower(clip)
        self.n_ctx = int(n_ctx)
        self.depth = prompt_depth(depth, tower.layers)
        tokens = tokenizer(class_prompts(class_names, self.n_ctx, descriptions))
        if (tokens[:, -1] != 0).any():
            what = "class name + description" if descriptions else "class name"
            raise ValueError(f"{self.n_ctx} context tokens + {what} exceed the text context of "
                             f"{tokens.shape[1]} tokens; use fewer context tokens")
        if _is_causal(tower.attn_mask, tokens.shape[1]) and tower.pool_type in ("argmax", "eos"):
            # Under a causal mask nothing after the pooled EOT token can change it: drop the padding.
            tokens = tokens[:, : int(_pool_index(tokens, tower).max()) + 1]
        # The prompt text only fixes the token ids (class name, EOT position for pooling); the
        # embeddings of the X positions are never used.
        self.register_buffer("tokens", tokens, persistent=False)
        with torch.no_grad():
            embedded = tower.token_embedding(tokens)
        self.register_buffer("token_embeds", embedded, persistent=False)
        self.ctx = nn.Parameter(torch.randn(self.depth, self.n_ctx, tower.width) * init_std)
        self._tower = tower  # plain attribute: the frozen weights belong to the owning model's `clip`
        self._cache: tuple[tuple, torch.Tensor] | None = None

    @property
    def width(self) -> int:
        return self.ctx.shape[-1]

    @property
    def text_layers(self) -> int:
        return self._tower.layers

    def forward(self) -> torch.Tensor:
        """Unnormalised class embeddings [C, E].

        Without autograd (inference, validation) they are computed once and reused until the
        context tokens change (an optimizer step or a checkpoint load bumps their version).
        """
        if torch.is_grad_enabled():
            self._cache = None
            return self._encode()
        key = (self.ctx.device, self.ctx.dtype, self.ctx._version, self.ctx.data_ptr())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._encode())
        return self._cache[1]

    def _encode(self) -> torch.Tensor:
        tower, n = self._tower, self.n_ctx
        c = self.tokens.shape[0]
        x = self.token_embeds
        x = torch.cat([x[:, :1], self.ctx[0].expand(c, -1, -1), x[:, 1 + n :]], dim=1)
        x = x + tower.positional_embedding[: x.shape[1]]
        batch_first = getattr(tower.transformer, "batch_first", True)
        mask = tower.attn_mask
        mask = mask[: x.shape[1], : x.shape[1]] if mask is not None else None
        if not batch_first:
            x = x.transpose(0, 1)
        for i, block in enumerate(tower.transformer.resblocks):
            if 0 < i < self.depth:
                deep = self.ctx[i].expand(c, -1, -1)
                if batch_first:
                    x = torch.cat([x[:, :1], deep, x[:, 1 + n :]], dim=1)
                else:
                    x = torch.cat([x[:1], deep.transpose(0, 1), x[1 + n :]], dim=0)
            x = block(x, attn_mask=mask)
        if not batch_first:
            x = x.transpose(0, 1)
        x = tower.ln_final(x)
        pooled = text_global_pool(x, self.tokens, tower.pool_type, eos_token_id=tower.eos_id)
        proj = tower.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
