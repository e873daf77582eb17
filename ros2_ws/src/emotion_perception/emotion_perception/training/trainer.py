"""Train and evaluation loops over ``ClipDataset`` batches, for any ``EmotionModel``.

The loss is a criterion from ``models.losses`` chosen by the model's kind (OUS: the α switch over
contrastive + similarity + polarity losses; DuSE: contrastive), or plain cross-entropy for models
without one. Criteria return ``(loss, {term: float})`` and carry state for resuming.
Mixed precision (autocast + GradScaler) is used on CUDA only; the CPU path is the same code in fp32.
Scores always come from the confusion matrix of the whole loader, never averaged per batch;
under torchrun the confusion matrices of all ranks are summed (``training.distributed``).
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
from . import distributed


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

    needs_aux = True


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
    predictions: np.ndarray  # [N] predicted canonical ids, in dataset-index order
    targets: np.ndarray
    indices: np.ndarray  # dataset index of each prediction
    probabilities: np.ndarray = field(repr=False, default=None)  # [N, C]


class HeadNetwork(nn.Module):
    """What the loops (and DDP) call: the model on pixel clips, or its head on cached features.

    ``aux=False`` returns the logits alone: DDP waits for a gradient of every parameter an output
    depends on, so outputs the loss will not use (OUS's polarity and alignment terms after the α
    switch) must not be returned.
    """

    def __init__(self, model: EmotionModel, features: bool = False):
        super().__init__()
        self.model = model
        self.features = features

    def forward(self, face, mask, scene=None, aux: bool = True) -> HeadOutput:
        if self.features:
            out = self.model.forward_window(face, mask, scene, mask if scene is not None else None)
        else:
            out = self.model(face, mask, scene)
        return out if aux else HeadOutput(logits=out.logits)


class Trainer:
    """Runs epochs of one model with one optimizer on one device (one rank of a torchrun world).

    ``features``: batches hold cached per-frame features (``feature_cache``), not pixels.
    Under torchrun the training forward goes through DistributedDataParallel; evaluation runs
    each rank's shard of the loader and gathers the results.
    """

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
        features: bool = False,
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
        self.world = distributed.env_world() if distributed.active() else distributed.World()
        self.progress = progress and self.world.main
        self.network = HeadNetwork(model, features)
        self.train_network: nn.Module = self.network
        if self.world.distributed and optimizer is not None:
            self.train_network = nn.parallel.DistributedDataParallel(
                self.network, device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=True, broadcast_buffers=False,
            )

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
        self.train_network.train()
        totals: dict[str, float] = {}
        seen = 0
        start = time.perf_counter()
        bar = tqdm(loader, desc=desc, leave=False, disable=not self.progress, dynamic_ncols=True)
        sync_switch = self.world.distributed and hasattr(self.criterion, "observe")
        for batch in bar:
            face, mask, scene, labels, polarity = self._inputs(batch)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                output = self.train_network(face, mask, scene, aux=getattr(self.criterion, "needs_aux", True))
                loss, parts = self.criterion(output, labels, polarity, **({"update": False} if sync_switch else {}))
            if sync_switch:  # every rank's α switch follows the contrastive loss of the global batch
                self.criterion.observe(self._global_mean(parts["contrastive"], labels.shape[0]))
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
        totals, seen = self._sum_over_ranks(totals, seen)
        out = {name: value / max(seen, 1) for name, value in totals.items()}
        out["samples"] = seen
        out["seconds"] = time.perf_counter() - start
        return out

    @torch.no_grad()
    def evaluate(self, loader, *, desc: str = "eval") -> EvalResult:
        """Predictions over the whole loader and the scores of its full confusion matrix."""
        self.network.eval()
        preds, targets, indices, probs = [], [], [], []
        loss_sum, seen = 0.0, 0
        bar = tqdm(loader, desc=desc, leave=False, disable=not self.progress, dynamic_ncols=True)
        for batch in bar:
            face, mask, scene, labels, polarity = self._inputs(batch)
            with self._autocast():
                output = self.network(face, mask, scene)
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
        num_classes = self.model.num_classes
        local = (_joined(preds, np.int64), _joined(targets, np.int64), _joined(indices, np.int64),
                 _joined(probs, np.float32, num_classes))
        # Every rank holds a disjoint shard: sum the confusion matrices, gather the per-clip rows.
        confusion = torch.from_numpy(confusion_matrix(local[1], local[0], num_classes)).to(self.device)
        confusion = distributed.all_reduce_sum(confusion).cpu().numpy()
        sums, seen = self._sum_over_ranks({"loss": loss_sum}, seen)
        if not seen:
            raise ValueError("evaluation loader is empty")
        pred, tgt, idx, prob = (np.concatenate(part) for part in zip(*distributed.all_gather(local)))
        order = np.argsort(idx, kind="stable")  # dataset order, whatever the sharding
        return EvalResult(
            scores=scores_from_confusion(confusion),
            loss=sums["loss"] / seen,
            predictions=pred[order],
            targets=tgt[order],
            indices=idx[order],
            probabilities=prob[order],
        )

    def _sum_over_ranks(self, totals: dict[str, float], seen: int) -> tuple[dict[str, float], int]:
        """Per-rank sums (loss terms, sample count) summed over a torchrun world, in one all-reduce."""
        if not self.world.distributed:
            return totals, seen
        names = sorted(totals)
        values = torch.tensor([totals[n] for n in names] + [seen], dtype=torch.float64, device=self.device)
        values = distributed.all_reduce_sum(values).tolist()
        return dict(zip(names, values[:-1])), int(values[-1])

    def _global_mean(self, value: float, n: int) -> float:
        sums, count = self._sum_over_ranks({"v": value * n}, n)
        return sums["v"] / max(count, 1)


def _joined(chunks: list[np.ndarray], dtype, *tail: int) -> np.ndarray:
    """Concatenated batch results; an empty array of the right shape for a rank without clips."""
    return np.concatenate(chunks).astype(dtype, copy=False) if chunks else np.zeros((0, *tail), dtype)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameters (its weights are fixed); "
            "train a head model such as OUS or DuSE"
        )
    return params
