"""Train and evaluation loops over ``ClipDataset`` batches, for any ``EmotionModel``.

The loss is a criterion from ``models.losses`` chosen by the model's kind (OUS: the α switch over
contrastive + similarity + polarity losses; DuSE: contrastive), or plain cross-entropy for models
without one. Criteria return ``(loss, {term: float})`` and carry state for resuming.
Mixed precision (autocast + GradScaler) is used on CUDA only; the CPU path is the same code in fp32.
Scores always come from the confusion matrix of the whole loader, never averaged per batch.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..evaluation.metrics import Scores, confusion_matrix, scores_from_confusion
from ..models.base import EmotionModel, HeadOutput
from ..models.losses import criterion_for


class CrossEntropyCriterion:
    """Cross-entropy on the classes, plus on the scene polarity when the model predicts it.

    The criterion of models without one of their own in ``models.losses`` (e.g. a custom model).
    """

    def __call__(self, out: HeadOutput, targets: torch.Tensor, polarity_targets=None):
        loss = F.cross_entropy(out.logits.float(), targets)
        parts = {"ce": float(loss.detach())}
        if out.polarity_logits is not None and polarity_targets is not None:
            pol = F.cross_entropy(out.polarity_logits.float(), polarity_targets)
            parts["polarity"] = float(pol.detach())
            loss = loss + pol
        return loss, parts

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def make_criterion(model: nn.Module, alpha: float | None = None):
    """The model kind's criterion from ``models.losses`` (OUS: α switch, DuSE: contrastive).

    ``alpha`` overrides the profile's switch threshold; models without a criterion of their own
    train with ``CrossEntropyCriterion``, and then ``alpha`` is an error.
    """
    head = dict(getattr(model, "head_config", {}) or {})
    if alpha is not None:
        head["alpha"] = float(alpha)
    try:
        criterion = criterion_for(getattr(model, "kind", ""), head)
    except ValueError:
        criterion = CrossEntropyCriterion()
    if alpha is not None and not hasattr(criterion, "alpha"):
        raise ValueError(f"alpha is set but {type(model).__name__} has no α-switch loss")
    return criterion


@dataclass
class EvalResult:
    scores: Scores
    loss: float
    predictions: np.ndarray  # [N] predicted canonical ids, in loader order
    targets: np.ndarray
    indices: np.ndarray  # dataset index of each prediction
    probabilities: np.ndarray = field(repr=False, default=None)  # [N, C]


class Trainer:
    """Runs epochs of one model with one optimizer on one device."""

    def __init__(
        self,
        model: EmotionModel,
        optimizer: torch.optim.Optimizer | None,
        *,
        criterion=None,
        device: str | torch.device = "cpu",
        amp: bool = False,
        grad_clip: float | None = None,
        warmup_steps: int = 0,
        progress: bool = True,
    ):
        self.model = model
        self.optimizer = optimizer
        self.criterion = criterion if criterion is not None else make_criterion(model)
        # Validation batches must not move a stateful criterion (the α switch's running loss).
        params = inspect.signature(self.criterion.__call__).parameters
        self._eval_kwargs = {"update": False} if "update" in params else {}
        self.device = torch.device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.grad_clip = grad_clip
        self.warmup_steps = int(warmup_steps)
        self.steps_done = 0  # optimizer steps so far (set it when resuming, for the warm-up)
        self.progress = progress

    def _inputs(self, batch: dict):
        nb = self.device.type == "cuda"
        face = batch["face"].to(self.device, non_blocking=nb)
        mask = batch["mask"].to(self.device, non_blocking=nb)
        scene = batch.get("scene")
        if scene is not None:
            scene = scene.to(self.device, non_blocking=nb)
        labels = batch["label"].to(self.device, non_blocking=nb)
        polarity = batch["polarity"].to(self.device, non_blocking=nb)
        return face, mask, scene, labels, polarity

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def train_epoch(self, loader, *, desc: str = "train") -> dict:
        """One pass over ``loader``; returns the mean loss (and mean loss terms) per sample."""
        if self.optimizer is None:
            raise RuntimeError("training needs an optimizer")
        self.model.train()
        totals: dict[str, float] = {}
        seen = 0
        start = time.perf_counter()
        bar = tqdm(loader, desc=desc, leave=False, disable=not self.progress, dynamic_ncols=True)
        for batch in bar:
            face, mask, scene, labels, polarity = self._inputs(batch)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                output = self.model(face, mask, scene)
                loss, parts = self.criterion(output, labels, polarity)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} during {desc}; lower the learning rate")
            self.scaler.scale(loss).backward()
            if self.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(trainable_parameters(self.model), self.grad_clip)
            warming = self.steps_done < self.warmup_steps
            if warming:  # linear warm-up: step k runs at (k + 1) / N of the learning rate
                base = [g["lr"] for g in self.optimizer.param_groups]
                for g in self.optimizer.param_groups:
                    g["lr"] *= (self.steps_done + 1) / self.warmup_steps
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if warming:
                for g, lr in zip(self.optimizer.param_groups, base):
                    g["lr"] = lr
            self.steps_done += 1
            n = labels.shape[0]
            seen += n
            for name, value in {"loss": loss.detach(), **parts}.items():
                totals[name] = totals.get(name, 0.0) + float(value) * n
            bar.set_postfix(loss=f"{totals['loss'] / seen:.4f}")
        bar.close()
        out = {name: value / max(seen, 1) for name, value in totals.items()}
        out["samples"] = seen
        out["seconds"] = time.perf_counter() - start
        return out

    @torch.no_grad()
    def evaluate(self, loader, *, desc: str = "eval") -> EvalResult:
        """Predictions over the whole loader and the scores of its full confusion matrix."""
        self.model.eval()
        preds, targets, indices, probs = [], [], [], []
        loss_sum, seen = 0.0, 0
        bar = tqdm(loader, desc=desc, leave=False, disable=not self.progress, dynamic_ncols=True)
        for batch in bar:
            face, mask, scene, labels, polarity = self._inputs(batch)
            with self._autocast():
                output = self.model(face, mask, scene)
                loss, _ = self.criterion(output, labels, polarity, **self._eval_kwargs)
            n = labels.shape[0]
            loss_sum += float(loss) * n
            seen += n
            p = output.logits.float().softmax(-1)
            probs.append(p.cpu().numpy())
            preds.append(p.argmax(-1).cpu().numpy())
            targets.append(batch["label"].numpy())
            indices.append(batch["index"].numpy())
        bar.close()
        if not seen:
            raise ValueError("evaluation loader is empty")
        pred = np.concatenate(preds)
        tgt = np.concatenate(targets)
        num_classes = self.model.num_classes
        scores = scores_from_confusion(confusion_matrix(tgt, pred, num_classes))
        return EvalResult(
            scores=scores,
            loss=loss_sum / seen,
            predictions=pred,
            targets=tgt,
            indices=np.concatenate(indices),
            probabilities=np.concatenate(probs),
        )


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameters (its weights are fixed); "
            "train a head model such as OUS or DuSE"
        )
    return params
