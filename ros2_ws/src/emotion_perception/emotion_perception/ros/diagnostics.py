"""Processing statistics and their diagnostic verdict, ROS-free (the node only publishes them).

``ProcessingMonitor`` counts frames in, frames published and frames dropped, per camera and in
total, and keeps recent receive-to-publish latencies; ``evaluate`` (the node) and
``evaluate_camera`` (one camera) turn a snapshot into a level (OK / WARN / ERROR / STALE, the
values of diagnostic_msgs/DiagnosticStatus), a message and key-value pairs.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

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
    camera_timeout_s: float = 1.0

    @classmethod
    def from_params(cls, values: dict) -> "Thresholds":
        """From the node's parameter values (``diag_*`` names, see ``params.PARAMETERS``)."""
        return cls(**{f: float(values[f"diag_{f}"]) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Snapshot:
    """Counters since monitoring began, and rates over the recent window, of all cameras (the
    monitor's snapshot) or of one (``cameras[source]``)."""

    received: int  # frames that arrived
    processed: int  # frames whose result was published
    dropped: int  # stale frames replaced before processing, plus bad images
    errors: int  # frames whose inference failed
    rate_hz: float  # processed frames per second over the recent window
    received_rate_hz: float
    drop_ratio: float  # dropped / received over the recent window
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    seconds_since_input: float | None  # None: nothing received yet
    age_s: float = 0.0  # seconds since monitoring began
    cameras: dict[str, "Snapshot"] = field(default_factory=dict)  # per source, in declared order

    @property
    def silent_s(self) -> float:
        """Seconds without an image: since the last one, or since monitoring began."""
        return self.age_s if self.seconds_since_input is None else self.seconds_since_input


@dataclass(frozen=True)
class Report:
    level: int
    message: str
    values: list[tuple[str, str]]


class _Counts:
    """Counters and recent-event windows of one scope (all cameras, or one)."""

    def __init__(self):
        self.received = self.processed = self.dropped = self.errors = 0
        self.ins: deque[float] = deque()  # receive times
        self.outs: deque[tuple[float, float]] = deque()  # (publish time, latency s)
        self.drops: deque[float] = deque()  # drop times
        self.first_input: float | None = None
        self.last_input: float | None = None

    def trim(self, horizon: float) -> None:
        while self.ins and self.ins[0] < horizon:
            self.ins.popleft()
        while self.outs and self.outs[0][0] < horizon:
            self.outs.popleft()
        while self.drops and self.drops[0] < horizon:
            self.drops.popleft()

    def snapshot(self, now: float, window_s: float, started: float) -> Snapshot:
        lat = np.array([x[1] for x in self.outs]) * 1000.0
        # right after start the window is not full yet: divide by the time actually covered
        covered = window_s if self.first_input is None else now - self.first_input
        span = max(min(window_s, covered), 1.0)
        return Snapshot(
            received=self.received,
            processed=self.processed,
            dropped=self.dropped,
            errors=self.errors,
            rate_hz=len(self.outs) / span,
            received_rate_hz=len(self.ins) / span,
            drop_ratio=min(1.0, len(self.drops) / len(self.ins)) if self.ins else 0.0,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else None,
            seconds_since_input=None if self.last_input is None else now - self.last_input,
            age_s=now - started,
        )


class ProcessingMonitor:
    """Per-camera accounting of every image from arrival to its one outcome, and sliding windows
    of recent events. Thread-safe: the executor, the worker and the diagnostics timer call it.

    An image counted by ``received`` either fails to convert (``rejected``) or is ``admit``-ted
    as a frame, which ends in exactly one of ``published`` (latency = publish - receive time),
    ``dropped`` or ``failed``. So for every camera, once nothing is in flight, received =
    processed + dropped + errors, and every published frame has a latency. ``cameras`` declares
    the expected sources, so a camera that never sends an image is reported too.
    """

    def __init__(self, window_s: float = 5.0, clock=time.monotonic, cameras=()):
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._total = _Counts()
        self._cameras = {source: _Counts() for source in cameras}
        # id(frame) -> (source, receive time). The caller (the worker) holds each admitted frame
        # until its outcome is reported, so no other object can take its id meanwhile.
        self._in_flight: dict[int, tuple[str, float]] = {}

    def _scopes(self, source: str) -> tuple[_Counts, _Counts]:
        camera = self._cameras.get(source)
        if camera is None:
            camera = self._cameras[source] = _Counts()
        return self._total, camera

    def received(self, source: str = "") -> float:
        """Count an image arriving from ``source``; returns its receive time (for ``admit``)."""
        now = self._clock()
        with self._lock:
            for c in self._scopes(source):
                c.received += 1
                c.last_input = now
                if c.first_input is None:
                    c.first_input = now
                c.ins.append(now)
            self._trim(now)
        return now

    def rejected(self, source: str = "") -> None:
        """An image that could not become a frame (bad buffer): dropped on arrival."""
        with self._lock:
            self._drop(source, self._clock())

    def admit(self, frame, received_at: float) -> None:
        """``frame`` (from an image counted by ``received``) is on its way to a result."""
        with self._lock:
            self._in_flight[id(frame)] = (frame.source, received_at)

    def published(self, frame) -> bool:
        """``frame``'s result went out. False (nothing counted) for a frame not admitted here."""
        now = self._clock()
        with self._lock:
            entry = self._in_flight.pop(id(frame), None)
            if entry is None:
                return False
            source, received_at = entry
            for c in self._scopes(source):
                c.processed += 1
                c.outs.append((now, now - received_at))
            self._trim(now)
        return True

    def dropped(self, frame) -> bool:
        """``frame`` was never processed (replaced by a newer one) or its result never went out."""
        with self._lock:
            entry = self._in_flight.pop(id(frame), None)
            if entry is not None:
                self._drop(entry[0], self._clock())
        return entry is not None

    def failed(self, frame) -> bool:
        """Inference (or publishing) raised on ``frame``."""
        with self._lock:
            entry = self._in_flight.pop(id(frame), None)
            if entry is not None:
                for c in self._scopes(entry[0]):
                    c.errors += 1
        return entry is not None

    @property
    def in_flight(self) -> int:
        """Frames admitted whose outcome has not been reported yet."""
        with self._lock:
            return len(self._in_flight)

    def _drop(self, source: str, now: float) -> None:
        for c in self._scopes(source):
            c.dropped += 1
            c.drops.append(now)

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            self._trim(now)
            cameras = {s: c.snapshot(now, self.window_s, self._started) for s, c in self._cameras.items()}
            return replace(self._total.snapshot(now, self.window_s, self._started), cameras=cameras)

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        self._total.trim(horizon)
        for c in self._cameras.values():
            c.trim(horizon)


def _fmt(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.1f}{unit}"


def _values(snap: Snapshot) -> list[tuple[str, str]]:
    return [
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


def _problems(snap: Snapshot, th: Thresholds) -> list[tuple[int, str]]:
    """Rate, latency and drop checks: (level, reason) for each threshold crossed."""
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
    return problems


def _silence(snap: Snapshot, th: Thresholds) -> str | None:
    """Why a camera counts as stopped (silent longer than ``camera_timeout_s``), or None."""
    if snap.silent_s <= th.camera_timeout_s:
        return None
    if snap.seconds_since_input is None:
        return f"no image received in {snap.silent_s:.1f} s"
    return f"no image for {snap.silent_s:.1f} s"


def _report(problems: list[tuple[int, str]], values: list[tuple[str, str]]) -> Report:
    if not problems:
        return Report(OK, "ok", values)
    return Report(max(p[0] for p in problems), "; ".join(p[1] for p in problems), values)


STATUS_SUFFIX = ": emotion perception"  # config/diagnostics_aggregator.yaml groups by it


def status_names(node_name: str, sources) -> tuple[str, list[str]]:
    """The node's status name (its fully qualified name: unique per namespace) and one per camera."""
    name = f"{node_name}{STATUS_SUFFIX}"
    return name, [f"{name}: camera {source}" for source in sources]


def evaluate(snap: Snapshot, th: Thresholds, active: bool = True, extra: dict | None = None) -> Report:
    """The node's verdict: the worst level any threshold reaches, with every reason named. Rates,
    latency and drops are judged over all cameras together; a camera silent for longer than
    ``camera_timeout_s`` is a WARN naming it, so one camera stopping shows while others run."""
    values = _values(snap) + [(str(k), str(v)) for k, v in (extra or {}).items()]
    if not active:
        return Report(OK, "inactive (lifecycle): not processing", values)
    if snap.seconds_since_input is None:
        return Report(STALE, "no image received yet", values)
    if snap.seconds_since_input > th.stale_s:
        return Report(STALE, f"no image for {snap.seconds_since_input:.1f} s", values)
    problems = _problems(snap, th)
    for source, camera in snap.cameras.items():
        silence = _silence(camera, th)
        if silence is not None:
            problems.append((WARN, f"{source}: {silence}"))
    return _report(problems, values)


def evaluate_camera(snap: Snapshot, th: Thresholds, active: bool = True) -> Report:
    """One camera's verdict (``Snapshot.cameras[source]``): silence, and its own rate, latency
    and drops."""
    values = _values(snap) + [("seconds since last image", _fmt(snap.seconds_since_input))]
    if not active:
        return Report(OK, "inactive (lifecycle): not processing", values)
    silence = _silence(snap, th)
    problems = [] if silence is None else [(WARN, silence)]
    return _report(problems + _problems(snap, th), values)
