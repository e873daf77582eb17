"""The perception node's /diagnostics verdict, computed without ROS."""
from __future__ import annotations

import re

import pytest

from emotion_perception.ros.diagnostics import ERROR, OK, STALE, WARN, ProcessingMonitor, Thresholds, evaluate


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def run(monitor, clock, seconds, fps, latency_s, publish_every=1, drop_every=0, drop_rest=False):
    """Feed ``fps`` frames per second; publish every n-th after ``latency_s`` (dropping the others
    with ``drop_rest``); drop every m-th."""
    for i in range(int(seconds * fps)):
        clock.t += 1.0 / fps
        received = monitor.received()
        if drop_every and i % drop_every == 0:
            monitor.dropped()
        elif i % publish_every == 0:
            clock.t += latency_s
            monitor.published(received)
            clock.t -= latency_s
        elif drop_rest:
            monitor.dropped()


def test_healthy_camera_is_ok():
    clock = FakeClock()
    monitor = ProcessingMonitor(window_s=5.0, clock=clock)
    run(monitor, clock, seconds=10, fps=30, latency_s=0.04)
    snap = monitor.snapshot()
    assert snap.rate_hz == pytest.approx(30, rel=0.05)
    assert snap.latency_p50_ms == pytest.approx(40, abs=1) and snap.latency_p95_ms == pytest.approx(40, abs=1)
    assert snap.received == 300 and snap.processed == 300 and snap.dropped == 0 and snap.drop_ratio == 0
    report = evaluate(snap, Thresholds(), extra={"model profile": "lite-fer2013"})
    assert report.level == OK and report.message == "ok"
    values = dict(report.values)
    assert values["model profile"] == "lite-fer2013" and values["latency p95 (ms)"] == "40.0"
    assert values["processing rate (Hz)"].startswith(("29.", "30."))


def test_slow_model_warns_then_errors():
    clock = FakeClock()
    monitor = ProcessingMonitor(window_s=5.0, clock=clock)
    # 30 fps in, every 20th frame processed (1.5 Hz), the rest replaced in the slot
    run(monitor, clock, seconds=10, fps=30, latency_s=0.7, publish_every=20, drop_rest=True)
    snap = monitor.snapshot()
    assert snap.dropped == 285 and snap.drop_ratio == pytest.approx(0.95, abs=0.01)
    report = evaluate(snap, Thresholds())
    assert report.level == WARN
    assert re.search(r"processing 1\.[56] Hz", report.message)  # 7 or 8 results in the 5 s window
    assert "latency p95 700.0 ms" in report.message and "95% of recent frames dropped" in report.message

    strict = Thresholds(latency_warn_ms=100, latency_error_ms=600)
    assert evaluate(monitor.snapshot(), strict).level == ERROR


def test_drop_ratio_thresholds():
    clock = FakeClock()
    monitor = ProcessingMonitor(window_s=5.0, clock=clock)
    run(monitor, clock, seconds=5, fps=10, latency_s=0.01, drop_every=1)  # every frame bad
    snap = monitor.snapshot()
    assert snap.drop_ratio == 1.0 and snap.processed == 0
    report = evaluate(snap, Thresholds(min_rate_warn_hz=0, min_rate_error_hz=0))
    assert report.level == ERROR and "100% of recent frames dropped" in report.message


def test_rate_right_after_start_is_not_underestimated():
    clock = FakeClock()
    monitor = ProcessingMonitor(window_s=5.0, clock=clock)
    run(monitor, clock, seconds=2, fps=20, latency_s=0.01)
    assert monitor.snapshot().rate_hz == pytest.approx(20, rel=0.1)


def test_rate_not_judged_when_input_is_slow():
    clock = FakeClock()
    monitor = ProcessingMonitor(window_s=5.0, clock=clock)
    run(monitor, clock, seconds=10, fps=1, latency_s=0.05)  # a 1 fps camera, all processed
    assert evaluate(monitor.snapshot(), Thresholds(min_rate_warn_hz=2.0)).level == OK


def test_stale_and_inactive():
    clock = FakeClock()
    monitor = ProcessingMonitor(clock=clock)
    first = evaluate(monitor.snapshot(), Thresholds())
    assert first.level == STALE and "no image received yet" in first.message
    run(monitor, clock, seconds=1, fps=10, latency_s=0.01)
    clock.t += 60
    stale = evaluate(monitor.snapshot(), Thresholds(stale_s=5))
    assert stale.level == STALE and "no image for 60" in stale.message
    assert evaluate(monitor.snapshot(), Thresholds(), active=False).level == OK
    # the old samples left the window: no latency to report
    assert monitor.snapshot().latency_p95_ms is None and monitor.snapshot().rate_hz == 0
