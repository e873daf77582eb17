"""Back-pressure for live cameras: one worker thread, one pending-frame slot per camera.

A camera produces frames faster than a slow model can classify them; queueing them would make
the output lag further and further behind the world. The worker keeps only the newest waiting
frame of each camera (``Frame.source``): a new frame replaces its camera's pending one (counted
as dropped), so latency stays bounded by one batch in flight plus one waiting, and memory by two
frames per camera. The newest frames of all cameras go through ``engine.process_batch`` together,
so one GPU serves several cameras with batched encodes.

``counts()`` is a consistent snapshot of the counters, in which
``submitted == processed + dropped + pending + in_flight`` (so ``processed + dropped`` once idle).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..types import EmotionEstimate, Frame

log = logging.getLogger(__name__)

ResultCallback = Callable[[Frame, list[EmotionEstimate]], None]
ErrorCallback = Callable[[Frame, Exception], None]
DropCallback = Callable[[Frame], None]


@dataclass(frozen=True)
class WorkerCounts:
    submitted: int  # frames accepted by submit()
    processed: int  # frames the engine finished (successfully or not)
    dropped: int  # frames replaced while waiting, or still waiting at close(): never processed
    failed: int  # of the processed frames, those whose processing or delivery raised
    pending: int  # frames waiting in their camera's slot
    in_flight: int  # frames in the batch being processed now


class LatestFrameWorker:
    """Runs the engine on a background thread for the latest submitted frame of each camera.

    Every submitted frame ends in exactly one callback, so a caller can account for each one:
    ``on_result(frame, estimates)`` (worker thread), ``on_error(frame, exception)`` (worker
    thread), or ``on_drop(frame)`` for a frame that never ran: replaced in its slot (on the thread
    that submitted the newer frame) or still pending at ``close`` (on the closing thread).
    An exception (bad frame, detector or model failure) fails that batch's frames only (an
    exception in ``on_result`` only its frame); they go to ``on_error`` (or the log) and the
    worker carries on. A failed batch is not retried: the engine may have updated tracks already.
    """

    def __init__(self, engine, on_result: ResultCallback, on_error: ErrorCallback | None = None,
                 name: str = "emotion-engine", on_drop: DropCallback | None = None):
        self.engine = engine
        self.on_result = on_result
        self.on_error = on_error
        self.on_drop = on_drop
        self.submitted = 0  # the counters are described in WorkerCounts
        self.dropped = 0
        self.processed = 0
        self.failed = 0
        self.batches = 0
        self._slots: dict[str, Frame] = {}  # source -> newest pending frame
        self._in_flight = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> bool:
        """Hand over a frame without blocking. False if it replaced its camera's pending frame."""
        with self._cond:
            if self._closed:
                raise RuntimeError("LatestFrameWorker is closed")
            replaced = self._slots.get(frame.source)
            self._slots[frame.source] = frame
            self.submitted += 1
            if replaced is not None:
                self.dropped += 1
            self._cond.notify()
        if replaced is not None:
            self._dropped([replaced])
        return replaced is None

    def counts(self) -> WorkerCounts:
        """All counters at one instant (taken under the worker's lock)."""
        with self._cond:
            return WorkerCounts(self.submitted, self.processed, self.dropped, self.failed,
                                len(self._slots), self._in_flight)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame is pending or in progress; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._slots and not self._in_flight, timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop after the batch in progress; pending frames are dropped. True if stopped."""
        with self._cond:
            self._closed = True
            pending = list(self._slots.values())
            self._slots.clear()
            self.dropped += len(pending)
            self._cond.notify_all()
        if pending:
            self._dropped(pending)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slots or self._closed)
                if self._closed:
                    return
                frames = list(self._slots.values())
                self._slots.clear()
                self._in_flight = len(frames)
            failed = len(frames)  # stays so if _run raises past its handlers (a BaseException ends the thread)
            try:
                failed = self._run(frames)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self.batches += 1
                    self.processed += len(frames)
                    self.failed += failed
                    self._cond.notify_all()

    def _run(self, frames: list[Frame]) -> int:
        """Process and deliver one batch; returns how many of its frames failed."""
        try:
            results = self.engine.process_batch(frames)
            if len(results) != len(frames):
                raise RuntimeError(f"engine returned {len(results)} results for a batch of {len(frames)} frames")
        except Exception as err:  # one bad frame must not stop the cameras
            for frame in frames:
                self._error(frame, err)
            return len(frames)
        failed = 0
        for frame, estimates in zip(frames, results):
            try:
                self.on_result(frame, estimates)
            except Exception as err:
                self._error(frame, err)
                failed += 1
        return failed

    def _dropped(self, frames: list[Frame]) -> None:
        self.engine.record_drop(len(frames))
        if self.on_drop is None:
            return
        for frame in frames:
            try:
                self.on_drop(frame)
            except Exception:
                log.exception("on_drop callback raised")

    def _error(self, frame: Frame, err: Exception) -> None:
        if self.on_error is None:
            log.error("emotion engine failed on frame %s/%s: %s", frame.source, frame.stamp_ns, err, exc_info=err)
            return
        try:
            self.on_error(frame, err)
        except Exception:
            log.exception("on_error callback raised")
