"""Back-pressure for live cameras: one worker thread, one pending-frame slot, stale frames dropped.

A camera produces frames faster than a slow model can classify them; queueing them would make
the output lag further and further behind the world. The worker keeps only the newest frame
that is waiting: a new frame replaces a pending one (counted as dropped), so latency stays
bounded by one frame in flight plus one waiting, and memory by two frames.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..types import EmotionEstimate, Frame

log = logging.getLogger(__name__)

ResultCallback = Callable[[Frame, list[EmotionEstimate]], None]
ErrorCallback = Callable[[Frame, Exception], None]


class LatestFrameWorker:
    """Runs ``engine.process`` on a background thread for the latest submitted frame.

    ``on_result(frame, estimates)`` and ``on_error(frame, exception)`` run on the worker thread.
    An exception on one frame (bad frame, detector or model failure, or in ``on_result``) goes
    to ``on_error`` (or the log) and the worker carries on with the next frame.
    """

    def __init__(self, engine, on_result: ResultCallback, on_error: ErrorCallback | None = None, name: str = "emotion-engine"):
        self.engine = engine
        self.on_result = on_result
        self.on_error = on_error
        self.dropped = 0  # frames replaced while waiting, never processed
        self.processed = 0  # frames the engine finished (successfully or not)
        self.failed = 0  # of those, frames that raised
        self._pending: Frame | None = None
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> bool:
        """Hand over a frame without blocking. False if it replaced a pending frame (a drop)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("LatestFrameWorker is closed")
            replaced = self._pending is not None
            self._pending = frame
            if replaced:
                self.dropped += 1
            self._cond.notify()
        if replaced:
            self.engine.record_drop()
        return not replaced

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame is pending or in progress; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop after the frame in progress; a still-pending frame is dropped. True if stopped."""
        with self._cond:
            self._closed = True
            dropped = self._pending is not None
            if dropped:
                self._pending = None
                self.dropped += 1
            self._cond.notify_all()
        if dropped:
            self.engine.record_drop()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:  # closed and nothing left
                    return
                frame, self._pending = self._pending, None
                self._busy = True
            try:
                self._handle(frame)
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1
                    self._cond.notify_all()

    def _handle(self, frame: Frame) -> None:
        try:
            self.on_result(frame, self.engine.process(frame))
        except Exception as err:  # one bad frame must not stop the camera
            with self._cond:
                self.failed += 1
            if self.on_error is None:
                log.exception("emotion engine failed on frame %s/%s", frame.source, frame.stamp_ns)
                return
            try:
                self.on_error(frame, err)
            except Exception:
                log.exception("on_error callback raised")
