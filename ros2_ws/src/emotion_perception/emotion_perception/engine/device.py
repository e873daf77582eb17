"""Device plumbing of the engine: CUDA streams, events and pinned staging buffers, or no-ops.

The engine has ONE code path. On CUDA (with ``cuda_streams``) ``Streams`` holds a copy stream and
separate face and scene streams; on CPU, or with streams off, every stream is ``None``, which
means "the current stream": ``on(None)`` is a null context, waits are no-ops and timing marks are
``time.perf_counter`` values instead of CUDA events.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda if available else cpu; a CUDA device on a machine without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def autocast(device: torch.device, precision: str):
    """Autocast to fp16/bf16, or a null context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


class Streams:
    """Copy, face and scene streams (CUDA) or ``None`` placeholders (CPU / streams off)."""

    def __init__(self, device: torch.device, enabled: bool):
        self.device = device
        self.cuda = device.type == "cuda"
        use = self.cuda and enabled
        self.copy = torch.cuda.Stream(device) if use else None
        self.face = torch.cuda.Stream(device) if use else None
        self.scene = torch.cuda.Stream(device) if use else None

    @property
    def enabled(self) -> bool:
        return self.copy is not None

    def on(self, stream):
        """Run the block on ``stream`` (None: the current stream)."""
        return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    def signal(self, stream=None):
        """Record an event on ``stream`` (None: current); None on CPU."""
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record(stream if stream is not None else torch.cuda.current_stream(self.device))
        return event

    def wait(self, event, stream=None) -> None:
        """Make ``stream`` (None: current) wait for ``event`` before running what comes next."""
        if event is not None:
            (stream if stream is not None else torch.cuda.current_stream(self.device)).wait_event(event)

    def hand_over(self, tensor: torch.Tensor, stream=None) -> None:
        """Tell the caching allocator that ``tensor`` (made on another stream) is used on ``stream``."""
        if self.cuda and tensor.is_cuda:
            tensor.record_stream(stream if stream is not None else torch.cuda.current_stream(self.device))

    def mark(self, stream=None):
        """A timing mark on ``stream``: a timing CUDA event, or perf_counter() on CPU."""
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(stream if stream is not None else torch.cuda.current_stream(self.device))
        return event

    @staticmethod
    def elapsed_ms(start, end) -> float:
        """Milliseconds between two marks (CUDA events must have completed: call after a sync)."""
        if isinstance(start, float):
            return (end - start) * 1e3
        return float(start.elapsed_time(end))


class Staging:
    """A reusable host buffer of uint8 images [N, S, S, 3] (pinned on CUDA) and its upload.

    cv2 writes crops straight into ``images(n)``; ``upload`` copies the first n to the device on
    the copy stream without blocking. Before the host buffer is written again, ``images`` waits
    for the previous upload to finish, so an in-flight copy never reads overwritten pixels.
    """

    def __init__(self, size: int, device: torch.device, streams: Streams, capacity: int = 8):
        self.size = size
        self.device = device
        self.streams = streams
        self._pin = device.type == "cuda"
        self._host = self._alloc(max(1, capacity))
        self._uploaded = None  # event recorded after the last upload (CUDA)

    def _alloc(self, n: int) -> torch.Tensor:
        return torch.zeros((n, self.size, self.size, 3), dtype=torch.uint8, pin_memory=self._pin)

    def images(self, n: int) -> np.ndarray:
        """A writable [n, S, S, 3] numpy view of the host buffer (grown if needed)."""
        if self._uploaded is not None:
            self._uploaded.synchronize()
            self._uploaded = None
        if n > self._host.shape[0]:
            self._host = self._alloc(max(n, 2 * self._host.shape[0]))
        return self._host[:n].numpy()

    def upload(self, n: int) -> tuple[torch.Tensor, object]:
        """Copy the first n images to the device on the copy stream; returns (tensor, ready event)."""
        with self.streams.on(self.streams.copy):
            pixels = self._host[:n].to(self.device, non_blocking=True)
        ready = self.streams.signal(self.streams.copy)
        self._uploaded = ready
        return pixels, ready
