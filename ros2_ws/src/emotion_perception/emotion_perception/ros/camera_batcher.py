"""Latest-frame slots for several cameras, drained by one worker thread through one engine.

The single-camera ``engine.LatestFrameWorker`` keeps one pending frame; with several cameras a
new frame of camera A must not replace a waiting frame of camera B. Here each source (camera) has
its own slot; the worker takes the newest frame of every camera that has one and runs them as
one ``engine.process_batch`` call, so one GPU serves all cameras with batched encodes. ROS-free.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..types import EmotionEstimate, Frame

log = logging.getLogger(__name__)


class CameraBatchWorker:
    """``submit(frame)`` never blocks; ``on_result(frame, estimates)`` and
    ``on_error(frame, exc)`` run on the worker thread. An exception fails that batch's frames
    only; the worker carries on with the next ones."""

    def __init__(self, engine, on_result: Callable[[Frame, list[EmotionEstimate]], None],
                 on_error: Callable[[Frame, Exception], None], name: str = "emotion-cameras"):
        self.engine = engine
        self.on_result = on_result
        self.on_error = on_error
        self.dropped = 0  # frames replaced in their slot before processing
        self.batches = 0
        self._slots: dict[str, Frame] = {}
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> bool:
        """Put ``frame`` in its camera's slot; False if it replaced a frame there (a drop)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("CameraBatchWorker is closed")
            replaced = frame.source in self._slots
            self._slots[frame.source] = frame
            if replaced:
                self.dropped += 1
            self._cond.notify()
        if replaced:
            self._record_drop(1)
        return not replaced

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._slots and not self._busy, timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop after the batch in progress; pending frames are dropped. True if stopped."""
        with self._cond:
            self._closed = True
            pending = len(self._slots)
            self._slots.clear()
            self.dropped += pending
            self._cond.notify_all()
        self._record_drop(pending)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _record_drop(self, n: int) -> None:
        record = getattr(self.engine, "record_drop", None)
        if n and record is not None:
            record(n)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slots or self._closed)
                if self._closed:
                    return
                frames = list(self._slots.values())
                self._slots.clear()
                self._busy = True
            try:
                self._run(frames)
            finally:
                with self._cond:
                    self._busy = False
                    self.batches += 1
                    self._cond.notify_all()

    def _run(self, frames: list[Frame]) -> None:
        try:
            results = self.engine.process_batch(frames)
        except Exception as err:  # not retried: the engine may have updated tracks already
            for frame in frames:
                self._error(frame, err)
            return
        for frame, estimates in zip(frames, results):
            self._deliver(frame, estimates)

    def _deliver(self, frame: Frame, estimates: list[EmotionEstimate]) -> None:
        try:
            self.on_result(frame, estimates)
        except Exception as err:
            self._error(frame, err)

    def _error(self, frame: Frame, err: Exception) -> None:
        try:
            self.on_error(frame, err)
        except Exception:
            log.exception("on_error callback raised")
