"""Training losses of the OUS and DuSE heads, and OUS's α switch.

Every criterion is called as ``criterion(output, targets, polarity_targets=None)`` with a
``HeadOutput`` and canonical class ids, and returns ``(total, parts)`` where ``parts`` maps each
loss name to its detached value (for logging). Criteria with state expose
``state_dict``/``load_state_dict`` so a resumed run continues where it stopped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..labels import POLARITY_OF_CLASS
from .base import HeadOutput


def contrastive_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the scaled cosine similarities between video and class-prompt features."""
    return F.cross_entropy(logits, targets)


def similarity_loss(face: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
    """Mean of 1 − cos(face, scene) over the batch (OUS's face/scene alignment term)."""
    return (1.0 - F.cosine_similarity(face, scene, dim=-1)).mean()


def polarity_targets_from_labels(targets: torch.Tensor) -> torch.Tensor:
    """Scene polarity implied by each emotion label (labels.polarity_target, vectorised)."""
    table = torch.as_tensor(POLARITY_OF_CLASS, device=targets.device)
    return table[targets]


def polarity_loss(polarity_logits: torch.Tensor, polarity_targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(polarity_logits, polarity_targets)


class ContrastiveCriterion:
    """DuSE: the contrastive loss alone."""

    needs_aux = False  # uses the logits only (see training.trainer.HeadNetwork)

    def __call__(self, out: HeadOutput, targets: torch.Tensor, polarity_targets=None):
        loss = contrastive_loss(out.logits, targets)
        return loss, {"contrastive": float(loss.detach())}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class AlphaSwitchCriterion:
    """OUS: L_sim + L_pol + L_cont while the running contrastive loss is above α, L_cont below.

    The value compared with α is an exponential moving average (``momentum``) of the
    *contrastive* loss of the training batches seen so far. The contrastive loss is the one term
    present in both regimes, so the switch does not flip merely because the total changed
    definition; it moves back to the full loss if the contrastive loss rises above α again.
    The decision for a batch uses the average *before* that batch, and ``update`` is only called
    by ``__call__`` in training (pass ``update=False`` for validation batches).
    """

    def __init__(self, alpha: float, momentum: float = 0.9):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.alpha = float(alpha)
        self.momentum = float(momentum)
        self.running: float | None = None  # EMA of the contrastive loss; None before the first batch

    @property
    def full(self) -> bool:
        """True while all three losses contribute."""
        return self.running is None or self.running > self.alpha

    def __call__(self, out: HeadOutput, targets: torch.Tensor, polarity_targets=None, update: bool = True):
        cont = contrastive_loss(out.logits, targets)
        parts = {"contrastive": float(cont.detach())}
        total = cont
        if self.full:
            if out.polarity_logits is None or "face" not in out.aux or "scene" not in out.aux:
                raise ValueError("the α switch needs polarity logits and aux['face'], aux['scene'] from an OUS head")
            if polarity_targets is None:
                polarity_targets = polarity_targets_from_labels(targets)
            sim = similarity_loss(out.aux["face"], out.aux["scene"])
            pol = polarity_loss(out.polarity_logits, polarity_targets)
            total = sim + pol + cont
            parts.update(similarity=float(sim.detach()), polarity=float(pol.detach()))
        parts["full"] = float(self.full)
        if update:
            self.observe(parts["contrastive"])
        return total, parts

    @property
    def needs_aux(self) -> bool:
        """Whether the next training batch uses the polarity logits and face/scene features."""
        return self.full

    def observe(self, value: float) -> None:
        """Move the running contrastive loss (distributed training passes the global batch's mean)."""
        self.running = value if self.running is None else self.momentum * self.running + (1 - self.momentum) * value

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "momentum": self.momentum, "running": self.running}

    def load_state_dict(self, state: dict) -> None:
        self.alpha, self.momentum, self.running = state["alpha"], state["momentum"], state["running"]


def criterion_for(kind: str, head_config: dict | None = None):
    """The training criterion of a model kind ('ous' or 'duse'), configured from profile.head."""
    cfg = head_config or {}
    if kind == "ous":
        return AlphaSwitchCriterion(alpha=cfg.get("alpha", 1.0), momentum=cfg.get("alpha_momentum", 0.9))
    if kind == "duse":
        return ContrastiveCriterion()
    raise ValueError(f"no training criterion for model kind {kind!r}")
