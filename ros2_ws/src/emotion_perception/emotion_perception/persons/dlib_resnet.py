"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

Two parts:

- ``parse_dlib_net(data)`` reads dlib's binary serialization of a DNN (``dlib::serialize`` of a
  ``loss_metric<fc_no_bias<...>>`` net) into a list of layers, input first. The format, as
  dlib's sources write it (serialize.h, dnn/core.h, dnn/layers.h, dnn/input.h, dnn/loss.h,
  cuda/tensor.h):

  - integers: a control byte (bit 7: negative; bits 0-3: how many bytes follow), then the
    magnitude's bytes, little-endian; floats: two such integers, mantissa then exponent
    (value = mantissa * 2**exponent; exponents 32000-32002 are inf, -inf, nan); bools: ASCII
    '1' / '0'; strings: an integer length, then the bytes;
  - a tensor: version 2, num_samples, k, nr, nc, then the values as little-endian float32; an
    alias tensor (a view into a layer's ``params``): version 1 and the four sizes;
  - the net is nested, outermost first: ``add_loss_layer`` writes version 1, the loss's details,
    then its subnet; ``add_layer`` writes version 2, its subnet, the layer's details, then three
    bools and three (empty) tensors; the innermost ``add_layer`` (the one holding the input layer)
    writes version 3, the input layer, its details, three bools, three tensors and an unsigned
    int; ``tag`` and ``skip`` layers write only version 1 and their subnet (the stream cannot tell
    a tag from a skip: the architecture says which is which);
  - each layer's details start with a version string naming it (``con_4``, ``affine_``, ...).

- ``DlibFaceResNet``: the network (dlib's ``dnn_face_recognition_ex.cpp`` architecture) as a
  ``torch.nn.Module`` built from the parsed layers, after checking that they are exactly that
  architecture. Its input is what dlib's ``input_rgb_image_sized<150>`` makes of 150x150 RGB
  chips: ``(pixel - mean) / 256`` per channel, the means read from the file. dlib's ``affine``
  layers (frozen batch norm, ``gamma * x + beta``) are folded into the convolution before them.

Anything that is not this network raises ``DlibModelFormatError``, which says what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 150
EMBEDDING_DIM = 128
_FLOAT_SPECIAL = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class DlibModelFormatError(ValueError):
    """The bytes are not (or not all of) dlib's serialized face-recognition ResNet."""


@dataclass
class DlibLayer:
    """One parsed layer: ``kind`` is con, affine, relu, max_pool, avg_pool, add_prev, fc,
    tag_or_skip, input or loss_metric; ``values`` its settings and weights (numpy float32)."""

    kind: str
    values: dict = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def _fail(self, what: str, detail: str):
        raise DlibModelFormatError(f"byte {self.pos}: expected {what}, {detail}")

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            self._fail(what, f"but the data ends after {len(self.data) - self.pos} more bytes (truncated file?)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self, what: str) -> int:
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            self._fail(what, f"found byte 0x{control:02x}, not a dlib integer's control byte")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def float(self, what: str) -> float:
        mantissa = self.int(what)
        exponent = self.int(what)
        if exponent in _FLOAT_SPECIAL:
            return float(_FLOAT_SPECIAL[exponent])
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self, what: str) -> bool:
        byte = self._take(1, what)[0]
        if byte not in (ord("0"), ord("1")):
            self.pos -= 1
            self._fail(what, f"found byte 0x{byte:02x}, not '0' or '1'")
        return byte == ord("1")

    def string(self, what: str, limit: int = 64) -> str:
        n = self.int(what)
        if not 0 <= n <= limit:
            self._fail(what, f"found a string length of {n}")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.pos -= n
            self._fail(what, f"found non-ASCII bytes {raw[:16]!r}")

    def version(self, what: str, allowed: tuple[str, ...]) -> str:
        name = self.string(f"{what} ({' or '.join(allowed)})")
        if name not in allowed:
            self._fail(f"{what} ({' or '.join(allowed)})", f"found {name!r}")
        return name

    def tensor(self, what: str) -> np.ndarray:
        version = self.int(what)
        if version != 2:
            self._fail(f"{what} (a tensor, version 2)", f"found version {version}")
        shape = tuple(self.int(what) for _ in range(4))
        count = int(np.prod(shape, dtype=np.int64))
        if min(shape) < 0 or count > len(self.data):
            self._fail(what, f"found the impossible tensor shape {shape}")
        values = np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        version = self.int(what)
        if version != 1:
            self._fail(f"{what} (an alias tensor, version 1)", f"found version {version}")
        return tuple(self.int(what) for _ in range(4))


def _slice(params: np.ndarray, offset: int, shape: tuple[int, ...], what: str, reader: _Reader) -> np.ndarray:
    flat = params.reshape(-1)
    size = int(np.prod(shape))
    if offset + size > flat.size:
        reader._fail(what, f"but the layer's params hold {flat.size} values, fewer than {offset + size}")
    return flat[offset:offset + size].reshape(shape)


def _window(r: _Reader, layer: str) -> dict:
    return {"nr": r.int(f"{layer} rows"), "nc": r.int(f"{layer} columns"),
            "stride_y": r.int(f"{layer} stride_y"), "stride_x": r.int(f"{layer} stride_x"),
            "padding_y": r.int(f"{layer} padding_y"), "padding_x": r.int(f"{layer} padding_x")}


def _details(r: _Reader) -> DlibLayer:
    """A computational layer's details (what ``add_layer`` wraps)."""
    kinds = ("con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2")
    name = r.version("a layer", kinds)
    if name == "con_4":
        params = r.tensor("con params")
        v = {"num_filters": r.int("con num_filters")}
        v.update(_window(r, "con"))
        filters, biases = r.alias("con filters"), r.alias("con biases")
        for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
            r.float(f"con {what} multiplier")
        if filters[0] != v["num_filters"] or filters[2:] != (v["nr"], v["nc"]) or biases[1] != v["num_filters"]:
            r._fail("con filters of num_filters x k x nr x nc", f"found filters {filters}, biases {biases}")
        v["weight"] = _slice(params, 0, filters, "con filters", r)
        v["bias"] = _slice(params, int(np.prod(filters)), (biases[1],), "con biases", r)
        return DlibLayer("con", v)
    if name == "affine_":
        params = r.tensor("affine params")
        gamma, beta = r.alias("affine gamma"), r.alias("affine beta")
        mode = r.int("affine mode")
        if mode != 0 or gamma != beta:  # dlib's layer_mode: CONV_MODE = 0 (one gamma, beta per channel)
            r._fail("an affine layer in CONV_MODE (0) with gamma and beta of one shape", f"found mode {mode}, {gamma}, {beta}")
        n = int(np.prod(gamma))
        return DlibLayer("affine", {"gamma": _slice(params, 0, (n,), "affine gamma", r),
                                    "beta": _slice(params, n, (n,), "affine beta", r)})
    if name in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(name[:-2], _window(r, name[:-2]))
    if name == "fc_2":
        num_outputs, num_inputs = r.int("fc num_outputs"), r.int("fc num_inputs")
        params = r.tensor("fc params")
        weights, _ = r.alias("fc weights"), r.alias("fc biases")
        bias_mode = r.int("fc bias mode")
        for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
            r.float(f"fc {what} multiplier")
        if bias_mode != 1:  # dlib's fc_bias_mode: FC_NO_BIAS = 1
            r._fail("fc_no_bias (bias mode 1)", f"found bias mode {bias_mode}")
        if weights[:2] != (num_inputs, num_outputs):
            r._fail(f"fc weights of {num_inputs} x {num_outputs}", f"found {weights}")
        return DlibLayer("fc", {"weight": _slice(params, 0, (num_inputs, num_outputs), "fc weights", r)})
    return DlibLayer(name.rstrip("_"))  # relu_, add_prev_: nothing more


def _layer_state(r: _Reader, innermost: bool) -> None:
    """What ``add_layer`` writes after the details: training state, read and dropped."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.bool(f"add_layer {what}")
    for what in ("x_grad", "cached_output", "grad_final" if innermost else "params_grad"):
        r.tensor(f"add_layer {what}")
    if innermost:
        r.int("add_layer sample_expansion_factor")


def parse_dlib_net(data: bytes) -> list[DlibLayer]:
    """The layers of a serialized ``loss_metric`` net, input first and the loss last."""
    r = _Reader(data)
    version = r.int("add_loss_layer version 1 (the file's first bytes)")
    if version != 1:
        r._fail("add_loss_layer version 1 (a dlib DNN file)", f"found {version}")
    r.version("the loss", ("loss_metric_2",))
    loss = DlibLayer("loss_metric", {"margin": r.float("loss margin"), "distance_threshold": r.float("loss dist_thresh")})
    wrappers = []  # outermost first: 2 = add_layer, 1 = tag or skip
    while True:
        version = r.int("a layer version (add_layer 2, tag/skip 1, input add_layer 3)")
        if version == 3:
            break
        if version not in (1, 2):
            r._fail("a layer version (add_layer 2, tag/skip 1, input add_layer 3)", f"found {version}")
        wrappers.append(version)
        if len(wrappers) > 10_000:
            r._fail("the input layer within 10000 layers", "found none")
    r.version("the input layer", ("input_rgb_image_sized",))
    means = [r.float(f"input avg_{c}") for c in ("red", "green", "blue")]
    size = (r.int("input rows"), r.int("input columns"))
    layers = [DlibLayer("input", {"mean_rgb": np.array(means, np.float32), "size": size}), _details(r)]
    _layer_state(r, innermost=True)
    for version in reversed(wrappers):
        if version == 1:
            layers.append(DlibLayer("tag_or_skip"))
        else:
            layers.append(_details(r))
            _layer_state(r, innermost=False)
    layers.append(loss)
    if r.pos != len(r.data):
        r._fail("the end of the file after the net", f"found {len(r.data) - r.pos} more bytes")
    return layers


# ----------------------------------------------------------------------------- the architecture

def _expected_kinds() -> list[tuple[str, int, int]]:
    """(kind, filters, stride) of each layer of dlib's face ResNet, input first (filters and stride
    0 where they do not apply), as dnn_face_recognition_ex.cpp composes it."""
    def ares(n):  # relu<add_prev1<affine<con<n,3,3,1,1,relu<affine<con<n,3,3,1,1,tag1<...>>>>>>>>>
        return [("tag_or_skip", 0, 0), ("con", n, 1), ("affine", 0, 0), ("relu", 0, 0), ("con", n, 1),
                ("affine", 0, 0), ("add_prev", 0, 0), ("relu", 0, 0)]

    def ares_down(n):  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<n,affine,2,tag1<...>>>>>>>
        return [("tag_or_skip", 0, 0), ("con", n, 2), ("affine", 0, 0), ("relu", 0, 0), ("con", n, 1),
                ("affine", 0, 0), ("tag_or_skip", 0, 0), ("tag_or_skip", 0, 0), ("avg_pool", 0, 2),
                ("add_prev", 0, 0), ("relu", 0, 0)]

    kinds = [("input", 0, 0), ("con", 32, 2), ("affine", 0, 0), ("relu", 0, 0), ("max_pool", 0, 2)]
    kinds += ares(32) * 3                                 # alevel4
    kinds += ares_down(64) + ares(64) * 3                 # alevel3
    kinds += ares_down(128) + ares(128) * 2               # alevel2
    kinds += ares_down(256) + ares(256) * 2               # alevel1
    kinds += ares_down(256)                               # alevel0
    return kinds + [("avg_pool", 0, 1), ("fc", EMBEDDING_DIM, 0), ("loss_metric", 0, 0)]


ARCHITECTURE = _expected_kinds()


def _check_architecture(layers: list[DlibLayer]) -> None:
    found = [layer.kind for layer in layers]
    expected = [kind for kind, _, _ in ARCHITECTURE]
    if found != expected:
        at = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b), min(len(found), len(expected)))
        raise DlibModelFormatError(
            f"not dlib's face-recognition ResNet: expected {len(expected)} layers, found {len(found)}; layer {at} "
            f"(input first) is {found[at] if at < len(found) else 'missing'}, expected "
            f"{expected[at] if at < len(expected) else 'nothing'}")
    size = layers[0].values["size"]
    if size != (INPUT_SIZE, INPUT_SIZE):
        raise DlibModelFormatError(f"expected an input of {INPUT_SIZE}x{INPUT_SIZE}, found {size[0]}x{size[1]}")
    for i, (layer, (kind, filters, stride)) in enumerate(zip(layers, ARCHITECTURE)):
        v = layer.values
        if kind == "con":
            # dlib's default padding: half the window at stride 1, none at stride 2
            want = (filters, 3 if i > 1 else 7, stride, 1 if stride == 1 else 0)
            got = (v["num_filters"], v["nr"], v["stride_y"], v["padding_y"])
            same_xy = (v["nc"], v["stride_x"], v["padding_x"]) == (v["nr"], v["stride_y"], v["padding_y"])
            if got != want or not same_xy:
                raise DlibModelFormatError(
                    f"layer {i}: expected con of {want[0]} filters {want[1]}x{want[1]}, stride {want[2]}, padding "
                    f"{want[3]}, found {v['num_filters']} filters {v['nr']}x{v['nc']}, stride "
                    f"{v['stride_y']}x{v['stride_x']}, padding {v['padding_y']}x{v['padding_x']}")
        elif kind in ("max_pool", "avg_pool"):
            window = (3, 3, 2, 2) if kind == "max_pool" else (2, 2, 2, 2) if stride == 2 else (0, 0, 1, 1)
            got = (v["nr"], v["nc"], v["stride_y"], v["stride_x"])
            if got != window or (v["padding_y"], v["padding_x"]) != (0, 0):
                raise DlibModelFormatError(f"layer {i}: expected {kind} window/stride {window} without padding, "
                                           f"found {got}, padding {v['padding_y']}x{v['padding_x']}")
        elif kind == "fc" and v["weight"].shape != (256, filters):
            raise DlibModelFormatError(f"layer {i}: expected fc of 256 inputs, {filters} outputs, found {v['weight'].shape}")


# ----------------------------------------------------------------------------- the torch module

def _fold(con: DlibLayer, affine: DlibLayer, in_channels: int) -> nn.Conv2d:
    """con followed by affine as one Conv2d: gamma * (w * x + b) + beta."""
    v, gamma, beta = con.values, affine.values["gamma"], affine.values["beta"]
    weight = v["weight"]
    if weight.shape[1] != in_channels or gamma.shape != (weight.shape[0],):
        raise DlibModelFormatError(f"expected con filters over {in_channels} channels followed by an affine of "
                                   f"{weight.shape[0]}, found filters {weight.shape}, affine {gamma.shape}")
    conv = nn.Conv2d(in_channels, weight.shape[0], v["nr"], stride=v["stride_y"], padding=v["padding_y"])
    with torch.no_grad():
        g = torch.from_numpy(gamma)
        conv.weight.copy_(torch.from_numpy(weight) * g[:, None, None, None])
        conv.bias.copy_(torch.from_numpy(v["bias"]) * g + torch.from_numpy(beta))
    return conv


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger of each size, the smaller tensor padded with zeros
    at the end (more channels, rows and columns); dlib's stride-2 blocks need both."""
    if a.shape == b.shape:
        return a + b
    k, nr, nc = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t):
        return F.pad(t, (0, nc - t.shape[3], 0, nr - t.shape[2], 0, k - t.shape[1]))

    return pad(a) + pad(b)


class _Residual(nn.Module):
    """ares / ares_down: relu(x + affine(con(relu(affine(con(x)))))), the shortcut average-pooled
    (2x2, stride 2) in the stride-2 block."""

    def __init__(self, first: nn.Conv2d, second: nn.Conv2d, down: bool):
        super().__init__()
        self.first, self.second, self.down = first, second, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_zero_padded(shortcut, y))


class DlibFaceResNet(nn.Module):
    """150x150 RGB chips (uint8, N x 150 x 150 x 3, as ``dlib.get_face_chip`` gives them) -> N x 128.

    ``forward`` takes the normalised NCHW float32 tensor (``to_input``); ``embed`` does both.
    It runs on the process's torch threads and leaves them alone: on a 2-core CPU that other
    programs share, 1 thread was 7-16x faster than 2 (benchmarks/embedder.py).
    """

    def __init__(self, layers: list[DlibLayer]):
        super().__init__()
        _check_architecture(layers)
        self.meta = {"margin": layers[-1].values["margin"], "distance_threshold": layers[-1].values["distance_threshold"]}
        self.register_buffer("mean", torch.from_numpy(layers[0].values["mean_rgb"]).view(1, 3, 1, 1))
        self.stem = _fold(layers[1], layers[2], 3)
        blocks, channels, i = [], 32, 5
        while ARCHITECTURE[i][0] == "tag_or_skip":
            down = ARCHITECTURE[i + 1][2] == 2
            first = _fold(layers[i + 1], layers[i + 2], channels)
            channels = first.out_channels
            second = _fold(layers[i + 4], layers[i + 5], channels)
            blocks.append(_Residual(first, second, down))
            i += 11 if down else 8
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, EMBEDDING_DIM, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(layers[-2].values["weight"]).T)
        self.eval()
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)  # ~7 % faster than NCHW on one CPU thread here

    def to_input(self, chips: np.ndarray) -> torch.Tensor:
        """dlib's input_rgb_image: (pixel - channel mean) / 256, channels first."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected {INPUT_SIZE}x{INPUT_SIZE} RGB chips, got shape {chips.shape}")
        x = torch.from_numpy(np.ascontiguousarray(chips, dtype=np.uint8)).permute(0, 3, 1, 2).float()
        return ((x - self.mean) / 256.0).contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    @torch.inference_mode()
    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(N, 128) float32 for N chips (one chip of shape 150x150x3 -> (1, 128))."""
        return self.forward(self.to_input(chips)).numpy()


def load_dlib_face_resnet(path: str | Path) -> DlibFaceResNet:
    """The network of a ``dlib_face_recognition_resnet_model_v1.dat`` file."""
    data = Path(path).read_bytes()
    try:
        return DlibFaceResNet(parse_dlib_net(data))
    except DlibModelFormatError as err:
        raise DlibModelFormatError(f"{path}: {err}") from None


__all__ = ["ARCHITECTURE", "DlibFaceResNet", "DlibLayer", "DlibModelFormatError", "load_dlib_face_resnet",
           "parse_dlib_net"]
