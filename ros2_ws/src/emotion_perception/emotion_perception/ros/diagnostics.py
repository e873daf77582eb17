"""Processing statistics and their diagnostic verdict, ROS-free (the node only publishes them).

``ProcessingMonitor`` counts frames in, frames published and frames dropped, and keeps recent
receive-to-publish latencies; ``evaluate`` turns a snapshot into a level (OK / WARN / ERROR /
STALE, the values of diagnostic_msgs/DiagnosticStatus), a message and key-value pairs.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass(frozen=True)
class Thresholds:
    min_rate_warn_hz: float = 2.0
    min_rate_error_hz: float = 0.5
    latency_warn_ms: float = 500.0
    latency_error_ms: float = 2000.0
    drop_warn_ratio: float = 0.8
    drop_error_ratio: float = 0.98
    stale_s: float = 5.0

    @classmethod
    def from_params(cls, values: dict) -> "Thresholds":
        """From the node's parameter values (``diag_*`` names, see ``params.PARAMETERS``)."""
        return cls(**{f: float(values[f"diag_{f}"]) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Snapshot:
    received: int  # frames that arrived (all time)
    processed: int  # frames whose result was published (all time)
    dropped: int  # stale frames replaced before processing, plus bad images (all time)
    errors: int  # frames whose inference failed (all time)
    rate_hz: float  # processed frames per second over the recent window
    received_rate_hz: float
    drop_ratio: float  # dropped / received over the recent window
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    seconds_since_input: float | None  # None: nothing received yet


@dataclass(frozen=True)
class Report:
    level: int
    message: str
    values: list[tuple[str, str]]


class ProcessingMonitor:
    """Thread-safe counters and a sliding window of recent events (the executor, the worker and
    the diagnostics timer touch it from different threads)."""

    def __init__(self, window_s: float = 5.0, clock=time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._received = self._processed = self._dropped = self._errors = 0
        self._in: deque[float] = deque()  # receive times
        self._out: deque[tuple[float, float]] = deque()  # (publish time, latency s)
        self._drops: deque[tuple[float, int]] = deque()  # (time, count)
        self._last_input: float | None = None
        self._first_input: float | None = None

    def received(self) -> float:
        """Count an arriving frame; returns its receive time (pass it to ``published``)."""
        now = self._clock()
        with self._lock:
            self._received += 1
            self._last_input = now
            if self._first_input is None:
                self._first_input = now
            self._in.append(now)
            self._trim(now)
        return now

    def published(self, received_at: float) -> None:
        now = self._clock()
        with self._lock:
            self._processed += 1
            self._out.append((now, now - received_at))
            self._trim(now)

    def dropped(self, n: int = 1) -> None:
        if n <= 0:
            return
        now = self._clock()
        with self._lock:
            self._dropped += n
            self._drops.append((now, n))

    def failed(self) -> None:
        with self._lock:
            self._errors += 1

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            self._trim(now)
            lat = np.array([x[1] for x in self._out]) * 1000.0
            # right after start the window is not full yet: divide by the time actually covered
            covered = self.window_s if self._first_input is None else now - self._first_input
            span = max(min(self.window_s, covered), 1.0)
            recent_drops = sum(n for _, n in self._drops)
            return Snapshot(
                received=self._received,
                processed=self._processed,
                dropped=self._dropped,
                errors=self._errors,
                rate_hz=len(self._out) / span,
                received_rate_hz=len(self._in) / span,
                drop_ratio=min(1.0, recent_drops / len(self._in)) if self._in else 0.0,
                latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
                latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else None,
                seconds_since_input=None if self._last_input is None else now - self._last_input,
            )

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        while self._in and self._in[0] < horizon:
            self._in.popleft()
        while self._out and self._out[0][0] < horizon:
            self._out.popleft()
        while self._drops and self._drops[0][0] < horizon:
            self._drops.popleft()


def _fmt(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.1f}{unit}"


def evaluate(snap: Snapshot, th: Thresholds, active: bool = True, extra: dict | None = None) -> Report:
    """The diagnostic verdict: the worst level any threshold reaches, with every reason named."""
    values = [
        ("processing rate (Hz)", _fmt(snap.rate_hz)),
        ("input rate (Hz)", _fmt(snap.received_rate_hz)),
        ("latency p50 (ms)", _fmt(snap.latency_p50_ms)),
        ("latency p95 (ms)", _fmt(snap.latency_p95_ms)),
        ("frames received", str(snap.received)),
        ("frames published", str(snap.processed)),
        ("frames dropped", str(snap.dropped)),
        ("recent drop ratio", f"{snap.drop_ratio:.2f}"),
        ("inference errors", str(snap.errors)),
    ]
    values += [(str(k), str(v)) for k, v in (extra or {}).items()]
    if not active:
        return Report(OK, "inactive (lifecycle): not processing", values)
    if snap.seconds_since_input is None:
        return Report(STALE, "no image received yet", values)
    if snap.seconds_since_input > th.stale_s:
        return Report(STALE, f"no image for {snap.seconds_since_input:.1f} s", values)

    problems: list[tuple[int, str]] = []

    def check(value, warn, error, text, higher_is_worse=True):
        if value is None:
            return
        worse = (lambda a, b: a > b) if higher_is_worse else (lambda a, b: a < b)
        if worse(value, error):
            problems.append((ERROR, text))
        elif worse(value, warn):
            problems.append((WARN, text))

    # Only judge the rate while frames arrive fast enough to reach it.
    if snap.received_rate_hz >= th.min_rate_warn_hz:
        check(snap.rate_hz, th.min_rate_warn_hz, th.min_rate_error_hz,
              f"processing {snap.rate_hz:.1f} Hz", higher_is_worse=False)
    check(snap.latency_p95_ms, th.latency_warn_ms, th.latency_error_ms,
          f"latency p95 {_fmt(snap.latency_p95_ms, ' ms')}")
    check(snap.drop_ratio, th.drop_warn_ratio, th.drop_error_ratio,
          f"{snap.drop_ratio:.0%} of recent frames dropped")
    if not problems:
        return Report(OK, "ok", values)
    level = max(p[0] for p in problems)
    return Report(level, "; ".join(p[1] for p in problems), values)
