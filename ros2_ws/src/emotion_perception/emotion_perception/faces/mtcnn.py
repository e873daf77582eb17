"""MTCNN (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks") in PyTorch, with the P/R/O-Net weights that the ``facenet-pytorch``
wheel installs (``facenet_pytorch/data/{pnet,rnet,onet}.pt``, plain state dicts).

We read those files ourselves and build the three networks here, so ``pip install --no-deps
facenet-pytorch`` is enough: facenet-pytorch's own runtime (and its torch pins) is never imported,
and nothing is downloaded at run time.

The cascade, as in the paper:
1. an image pyramid whose first level maps the smallest wanted face onto P-Net's 12 px window,
   each next level ``scale_factor`` (0.709) smaller;
2. P-Net, fully convolutional: a face score and a box regression for every 12 px window
   (stride 2); windows above threshold 1 become proposals, NMS per level and across levels;
3. R-Net re-scores 24 px crops of the squared proposals and refines their boxes;
4. O-Net re-scores 48 px crops and refines again; the O-Net score is the detection score.

Steps 3-4 alone also re-find a face that is already tracked (``redetect``): the tracker's
predicted box is the one proposal, which costs two small crops instead of a pyramid over the frame.

Conventions of these weight files (they were converted from the original Caffe/MATLAB model,
which ran on transposed images): input RGB scaled by ``(x - 127.5) / 128``; the regression
channels are (dx0, dy0, dx1, dy1) in image x/y, as fractions of the box side; R-Net and O-Net
flatten their last feature map in (width, height, channel) order before the dense layers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import WeightsMissingError
from ..models.weights import installed_package_file
from ..images import check_rgb
from ..types import Box, Detection
from .base import FaceDetector, check_device, from_reference, to_reference

PACKAGE = "facenet_pytorch"
HOW_TO_GET = "pip install --no-deps facenet-pytorch==2.6.0 (the wheel carries the P/R/O-Net weights)"
PNET_WINDOW, PNET_STRIDE = 12, 2
# Re-detection proposals around a predicted box: (growth, dx, dy), shifts in box sides.
PROPOSALS = ((1.0, 0.0, 0.0), (1.3, 0.0, 0.0), (1.0, -0.25, 0.0), (1.0, 0.25, 0.0), (1.0, 0.0, 0.25))


def _conv_prelu(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel), nn.PReLU(out_channels)]


class _Stage(nn.Module):
    """One MTCNN network. Layer attribute names are the state-dict keys of the weight files."""

    def __init__(self, layers: list[tuple[str, nn.Module]], heads: list[tuple[str, nn.Module]]):
        super().__init__()
        self.layers = [name for name, _ in layers]
        self.heads = [name for name, _ in heads]
        for name, module in layers + heads:
            self.add_module(name, module)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.layers:
            x = getattr(self, name)(x)
        return x


class PNet(_Stage):
    """12 px proposal net, fully convolutional: (N,3,H,W) -> regression (N,4,h,w), face prob (N,h,w)."""

    def __init__(self):
        conv1, prelu1 = _conv_prelu(3, 10, 3)
        conv2, prelu2 = _conv_prelu(10, 16, 3)
        conv3, prelu3 = _conv_prelu(16, 32, 3)
        super().__init__(
            [("conv1", conv1), ("prelu1", prelu1), ("pool1", nn.MaxPool2d(2, 2, ceil_mode=True)),
             ("conv2", conv2), ("prelu2", prelu2), ("conv3", conv3), ("prelu3", prelu3)],
            [("conv4_1", nn.Conv2d(32, 2, 1)), ("conv4_2", nn.Conv2d(32, 4, 1))],
        )

    def forward(self, x):
        x = self.features(x)
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class _DenseStage(_Stage):
    """R-Net / O-Net: convolutions, then dense layers over the (W, H, C)-ordered feature map."""

    def __init__(self, layers, dense: list[tuple[str, nn.Module]], heads):
        super().__init__(layers, heads)
        self.dense = [name for name, _ in dense]
        for name, module in dense:
            self.add_module(name, module)

    def forward(self, x):
        x = self.features(x).permute(0, 3, 2, 1).flatten(1)
        for name in self.dense:
            x = getattr(self, name)(x)
        score_head, box_head = self.heads[:2]
        return getattr(self, box_head)(x), torch.softmax(getattr(self, score_head)(x), dim=1)[:, 1]


class RNet(_DenseStage):
    """24 px refine net: (N,3,24,24) -> regression (N,4), face prob (N,)."""

    def __init__(self):
        conv1, prelu1 = _conv_prelu(3, 28, 3)
        conv2, prelu2 = _conv_prelu(28, 48, 3)
        conv3, prelu3 = _conv_prelu(48, 64, 2)
        super().__init__(
            [("conv1", conv1), ("prelu1", prelu1), ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
             ("conv2", conv2), ("prelu2", prelu2), ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
             ("conv3", conv3), ("prelu3", prelu3)],
            [("dense4", nn.Linear(576, 128)), ("prelu4", nn.PReLU(128))],
            [("dense5_1", nn.Linear(128, 2)), ("dense5_2", nn.Linear(128, 4))],
        )


class ONet(_DenseStage):
    """48 px output net: (N,3,48,48) -> regression (N,4), face prob (N,); its 5-landmark head is unused."""

    def __init__(self):
        conv1, prelu1 = _conv_prelu(3, 32, 3)
        conv2, prelu2 = _conv_prelu(32, 64, 3)
        conv3, prelu3 = _conv_prelu(64, 64, 3)
        conv4, prelu4 = _conv_prelu(64, 128, 2)
        super().__init__(
            [("conv1", conv1), ("prelu1", prelu1), ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
             ("conv2", conv2), ("prelu2", prelu2), ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
             ("conv3", conv3), ("prelu3", prelu3), ("pool3", nn.MaxPool2d(2, 2, ceil_mode=True)),
             ("conv4", conv4), ("prelu4", prelu4)],
            [("dense5", nn.Linear(1152, 256)), ("prelu5", nn.PReLU(256))],
            [("dense6_1", nn.Linear(256, 2)), ("dense6_2", nn.Linear(256, 4)), ("dense6_3", nn.Linear(256, 10))],
        )


def load_stage(stage: nn.Module, path: Path) -> nn.Module:
    """Load a state dict into ``stage``; a file of another shape is one clear ValueError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        stage.load_state_dict(state)
    except (RuntimeError, OSError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not an MTCNN {type(stage).__name__} state dict: {first}") from None
    return stage.eval()


def weight_paths(weights_dir: str | Path | None = None) -> dict[str, Path]:
    """{pnet, rnet, onet} -> file: from ``weights_dir`` if given, else from the installed wheel."""
    paths = {}
    for stage in ("pnet", "rnet", "onet"):
        if weights_dir is not None:
            path = Path(weights_dir).expanduser() / f"{stage}.pt"
        else:
            path = installed_package_file(f"{PACKAGE}:data/{stage}.pt")
        if path is None or not path.is_file():
            raise WeightsMissingError(path or f"{PACKAGE}/data/{stage}.pt", f"MTCNN needs {stage}.pt: {HOW_TO_GET}")
        paths[stage] = path
    return paths


def nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression of (N, 5) x0, y0, x1, y1, score rows.

    Overlap is intersection over union, or over the smaller box (``by_min``, the paper code's
    final-stage rule, which also removes a small box nested inside a bigger one).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    x0, y0, x1, y1, score = boxes.T
    area = (x1 - x0) * (y1 - y0)
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        inter = w * h
        base = np.minimum(area[best], area[rest]) if by_min else area[best] + area[rest] - inter
        order = rest[inter / np.maximum(base, 1e-9) <= threshold]
    return np.asarray(keep, dtype=int)


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each box's corners by its (dx0, dy0, dx1, dy1) offsets, in units of its width/height."""
    out = boxes.copy()
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    out[:, :4] = boxes[:, :4] + offsets * size
    return out


def squared(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square on its longer side, about the same centre."""
    out = boxes.copy()
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    return out


def _moved(boxes: np.ndarray, growth: float, dx: float, dy: float) -> np.ndarray:
    """Boxes grown ``growth`` times about their centre and moved by (dx, dy) of their sides."""
    out = boxes.copy()
    side = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2 + side * (dx, dy)
    out[:, :2], out[:, 2:4] = centre - side * growth / 2, centre + side * growth / 2
    return out


def normalise(rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) or (N,H,W,3) uint8 RGB -> float (N,3,H,W) in MTCNN's input scale."""
    array = rgb[None] if rgb.ndim == 3 else rgb
    return (torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float() - 127.5) / 128.0


def crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) resized crops of the (rounded) boxes, zero outside the image."""
    height, width = rgb.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(np.round(boxes[:, :4]).astype(int)):
        if x1 <= x0 or y1 <= y0:
            continue
        patch = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        interpolation = cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(patch, (size, size), interpolation=interpolation)
    return out


class MTCNNDetector(FaceDetector):
    """The MTCNN cascade; ``min_score`` is the O-Net threshold, ``min_size`` the smallest face searched.

    Thresholds (P-Net 0.6, R-Net 0.7, O-Net = ``min_score``, default 0.7) and the pyramid step
    0.709 are the values of the authors' released code. ``max_side`` caps the first pyramid level
    (the image is never searched above that many pixels on its long side), which bounds the cost
    on big photos; faces smaller than ``min_size`` or ``12 * long side / max_side`` px are missed.

    ``min_size`` 40 (the first level is 30 % of the frame): on a 640x480 frame this costs about
    0.7x the OpenCV cascade and finds every labelled face of the dev set (every 4th video frame);
    ``min_size=20`` reaches faces half that size at 1.7x the cascade's CPU time (one 640x480
    frame, one thread, interleaved runs; ``benchmarks/detector_speed.py``).
    """

    name = "mtcnn"
    BOX_ON_REFERENCE = (0.82, 1.09, 0.0, 0.015)

    def __init__(
        self,
        device: str = "cpu",
        weights_dir: str | Path | None = None,
        min_score: float = 0.7,
        min_size: float = 40,
        thresholds: tuple[float, float] = (0.6, 0.7),
        scale_factor: float = 0.709,
        max_side: int = 640,
    ):
        super().__init__(min_score, min_size)
        if not 0.0 < scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        self.device = check_device(device)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale_factor = float(scale_factor)
        self.max_side = int(max_side)
        paths = weight_paths(weights_dir)
        self.pnet = load_stage(PNet(), paths["pnet"]).to(self.device)
        self.rnet = load_stage(RNet(), paths["rnet"]).to(self.device)
        self.onet = load_stage(ONet(), paths["onet"]).to(self.device)

    def pyramid(self, height: int, width: int) -> list[float]:
        """Scales at which P-Net's 12 px window covers faces from ``min_size`` up to the short side."""
        scale = min(PNET_WINDOW / max(self.min_size, 1.0), self.max_side / max(height, width))
        scales = []
        while min(height, width) * scale >= PNET_WINDOW:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def _proposals(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        found = []
        level = rgb
        for scale in self.pyramid(height, width):
            # Each level from the one before: bilinear at a 0.709 step barely aliases and costs a
            # tenth of area averaging from the full frame; area only for a first step below 1/2.
            size = (math.ceil(width * scale), math.ceil(height * scale))
            shrink = size[0] / level.shape[1]
            level = cv2.resize(level, size, interpolation=cv2.INTER_AREA if shrink < 0.5 else cv2.INTER_LINEAR)
            offsets, prob = self.pnet(normalise(level).to(self.device))
            prob, offsets = prob[0].cpu().numpy(), offsets[0].cpu().numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys) == 0:
                continue
            boxes = np.column_stack([
                PNET_STRIDE * xs / scale, PNET_STRIDE * ys / scale,
                (PNET_STRIDE * xs + PNET_WINDOW) / scale, (PNET_STRIDE * ys + PNET_WINDOW) / scale,
                prob[ys, xs],
            ])
            keep = nms(boxes, 0.5)
            found.append(regress(boxes[keep], offsets[:, ys[keep], xs[keep]].T))
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found)
        return squared(boxes[nms(boxes, 0.7)])

    def _rescored(self, rgb: np.ndarray, boxes: np.ndarray, net: nn.Module, size: int) -> np.ndarray:
        """``boxes`` with ``net``'s face probability as score, moved by its regression."""
        offsets, prob = net(normalise(crops(rgb, boxes, size)).to(self.device))
        boxes = boxes.copy()
        boxes[:, 4] = prob.cpu().numpy()
        return regress(boxes, offsets.cpu().numpy())

    def _refine(self, rgb: np.ndarray, boxes: np.ndarray, net: nn.Module, size: int, threshold: float):
        boxes = self._rescored(rgb, boxes, net, size)
        return boxes[boxes[:, 4] >= threshold]

    @torch.inference_mode()
    def redetect(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[Detection | None]:
        """Each face of ``boxes`` (reference boxes, e.g. a tracker's predictions) found again in
        ``rgb`` with steps 3-4 of the cascade: R-Net scores a few proposals per box (the box, a
        bigger one, and the box moved a quarter side left, right and down, for a prediction that
        missed a turn), O-Net checks the best one. None where no proposal passes both thresholds,
        or where a better-scored box of another face now covers it (two tracks on one face leave one)."""
        check_rgb(rgb)
        if not boxes:
            return []
        height, width = rgb.shape[:2]
        reference = np.array([[b.x, b.y, b.x + b.w, b.y + b.h, 0.0] for b in boxes], dtype=np.float64)
        predicted = squared(from_reference(reference, self.BOX_ON_REFERENCE))
        proposals = np.concatenate([_moved(predicted, *move) for move in PROPOSALS])
        owner = np.tile(np.arange(len(boxes)), len(PROPOSALS))  # the box each proposal is for
        keep = np.isfinite(proposals).all(axis=1)
        proposals, owner = proposals[keep], owner[keep]
        scored = self._rescored(rgb, proposals, self.rnet, 24) if len(proposals) else proposals
        passed = np.flatnonzero(scored[:, 4] >= self.thresholds[1])
        best = {}  # box index -> its best-scored proposal
        for i in passed[np.argsort(-scored[passed, 4], kind="stable")]:
            best.setdefault(owner[i], i)
        found: list[Detection | None] = [None] * len(boxes)
        if not best:
            return found
        faces = np.array(list(best))
        checked = self._rescored(rgb, squared(scored[list(best.values())]), self.onet, 48)
        faces, checked = faces[checked[:, 4] >= self.min_score], checked[checked[:, 4] >= self.min_score]
        rows = to_reference(checked, self.BOX_ON_REFERENCE)
        for j in nms(checked, 0.7, by_min=True):
            found[faces[j]] = self._accepted(rows[j].tolist(), width, height)
        return found

    @torch.inference_mode()
    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        boxes = self._proposals(rgb)
        if len(boxes):
            boxes = self._refine(rgb, boxes, self.rnet, 24, self.thresholds[1])
            boxes = squared(boxes[nms(boxes, 0.7)])
        if len(boxes):
            boxes = self._refine(rgb, boxes, self.onet, 48, self.min_score)
            boxes = boxes[nms(boxes, 0.7, by_min=True)]
        return boxes
