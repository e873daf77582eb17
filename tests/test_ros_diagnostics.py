"""The perception node's /diagnostics verdict, computed without ROS."""
from __future__ import annotations

import re

import numpy as np
import pytest

from emotion_perception.ros.diagnostics import (ERROR, OK, STALE, WARN, ProcessingMonitor, Thresholds, evaluate,
                                                evaluate_camera)
from emotion_perception.types import Frame


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def frame(source=""):
    return Frame(np.zeros((2, 2, 3), np.uint8), source=source)


def run(monitor, clock, seconds, fps, latency_s, publish_every=1, drop_every=0, drop_rest=False, source=""):
    """Feed ``fps`` frames per second from ``source``; publish every n-th after ``latency_s``
    (dropping the others with ``drop_rest``); reject every m-th as a bad image."""
    for i in range(int(seconds * fps)):
        clock.t += 1.0 / fps
        received = monitor.received(source)
        if drop_every and i % drop_every == 0:
            monitor.rejected(source)
            continue
        f = frame(source)
        monitor.admit(f, received)
        if i % publish_every == 0:
            clock.t += latency_s
            assert monitor.published(f)
            clock.t -= latency_s
        elif drop_rest:
            assert monitor.dropped(f)


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


def two_cameras(clock, seconds, fps=30, latency_s=0.02):
    """A monitor that saw both cameras at ``fps`` for ``seconds``, every frame published."""
    monitor = ProcessingMonitor(window_s=5.0, clock=clock, cameras=["/left", "/right"])
    for _ in range(int(seconds * fps)):
        clock.t += 1.0 / fps
        for source in ("/left", "/right"):
            f = frame(source)
            monitor.admit(f, monitor.received(source))
            clock.t += latency_s
            assert monitor.published(f)
            clock.t -= latency_s
    return monitor


def test_one_camera_stopping_warns_within_the_timeout_while_the_other_runs():
    clock = FakeClock()
    th = Thresholds()
    monitor = two_cameras(clock, seconds=3)
    snap = monitor.snapshot()
    assert evaluate(snap, th).level == OK and list(snap.cameras) == ["/left", "/right"]
    stopped_at = clock.t
    # the left camera keeps running; the diagnostics timer looks every 0.5 s
    first_warn = None
    for _tick in range(6):
        for _ in range(15):
            clock.t += 1 / 30
            f = frame("/left")
            monitor.admit(f, monitor.received("/left"))
            monitor.published(f)
        report = evaluate(monitor.snapshot(), th)
        if report.level != OK and first_warn is None:
            first_warn = (clock.t - stopped_at, report)
    waited, report = first_warn
    assert th.camera_timeout_s < waited <= th.camera_timeout_s + 0.5
    assert report.level == WARN and report.message == f"/right: no image for {waited:.1f} s"
    snap = monitor.snapshot()
    left, right = evaluate_camera(snap.cameras["/left"], th), evaluate_camera(snap.cameras["/right"], th)
    assert left.level == OK and right.level == WARN and right.message.startswith("no image for 3.0")
    assert dict(right.values)["seconds since last image"] == "3.0"
    # the 5 s window still holds 2 s of the right camera's frames
    assert snap.cameras["/left"].rate_hz == pytest.approx(30, rel=0.02)
    assert snap.cameras["/right"].rate_hz == pytest.approx(12, rel=0.05)


def test_a_camera_that_never_sends_is_named():
    clock = FakeClock()
    monitor = ProcessingMonitor(clock=clock, cameras=["/left", "/right"])
    run(monitor, clock, seconds=2, fps=10, latency_s=0.01, source="/left")
    report = evaluate(monitor.snapshot(), Thresholds())
    assert report.level == WARN and report.message == "/right: no image received in 2.0 s"


def test_counts_add_up_per_camera():
    clock = FakeClock()
    monitor = ProcessingMonitor(clock=clock, cameras=["/a", "/b"])
    run(monitor, clock, seconds=2, fps=10, latency_s=0.03, publish_every=3, drop_rest=True, source="/a")
    run(monitor, clock, seconds=1, fps=10, latency_s=0.05, drop_every=4, source="/b")
    broken = frame("/b")
    monitor.admit(broken, monitor.received("/b"))
    assert monitor.failed(broken) and not monitor.failed(broken)  # one outcome per frame
    assert not monitor.published(frame("/b"))  # never admitted: not counted
    snap = monitor.snapshot()
    a, b = snap.cameras["/a"], snap.cameras["/b"]
    assert (a.received, a.processed, a.dropped, a.errors) == (20, 7, 13, 0)
    assert (b.received, b.processed, b.dropped, b.errors) == (11, 7, 3, 1)
    assert snap.received == 31 and snap.processed == 14 and snap.dropped == 16 and snap.errors == 1
    assert monitor.in_flight == 0
    assert a.latency_p50_ms == pytest.approx(30) and b.latency_p95_ms == pytest.approx(50)


def test_the_aggregator_config_groups_every_status_of_the_node():
    """config/diagnostics_aggregator.yaml's analyzer (a GenericAnalyzer: a status belongs to it when
    its name contains one of `contains` or starts with one of `startswith`) takes the node's status
    and its cameras', in any namespace, and nothing of another node."""
    import yaml

    from conftest import PACKAGE_DIR
    from emotion_perception.ros.diagnostics import status_names

    config = yaml.safe_load((PACKAGE_DIR / "config" / "diagnostics_aggregator.yaml").read_text())
    (analyzer,) = [v for v in config["analyzers"]["ros__parameters"].values() if isinstance(v, dict)]
    assert analyzer["type"] == "diagnostic_aggregator/GenericAnalyzer"

    def matches(name):
        return (any(c in name for c in analyzer.get("contains", []))
                or any(name.startswith(s) for s in analyzer.get("startswith", [])))

    for node in ("/perception_node", "/head/perception_node", "/robot/head/perception_node"):
        name, cameras = status_names(node, ["/head/image", "/back/image"])
        assert name == f"{node}: emotion perception" and len(cameras) == 2
        assert matches(name) and all(matches(c) for c in cameras)
    assert not matches("/camera_driver: usb camera") and not matches("/llm_bridge: latency")
