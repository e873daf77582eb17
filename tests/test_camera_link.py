"""camera_link: the subscription reliability that follows the publishers, and transport loss from
image stamps (ROS-free; the perception node wires them)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from emotion_perception.ros.camera_link import BEST_EFFORT, RELIABLE, StampGaps, choose_reliability
from emotion_perception.ros.diagnostics import OK, WARN, ERROR, ProcessingMonitor, Thresholds, evaluate_camera

PERIOD_NS = 33_333_333  # 30 Hz


@pytest.mark.parametrize("offered, expected", [
    ([RELIABLE], RELIABLE),
    ([RELIABLE, RELIABLE], RELIABLE),
    ([BEST_EFFORT], BEST_EFFORT),
    ([RELIABLE, BEST_EFFORT], BEST_EFFORT),  # a reliable subscription would get nothing from one of them
    ([], BEST_EFFORT),  # nobody yet: receive from whoever comes
])
def test_auto_follows_the_publishers(offered, expected):
    reliability, why = choose_reliability("auto", offered)
    assert reliability == expected
    assert why.startswith("auto")


def test_auto_names_the_best_effort_publishers_in_its_reason():
    assert choose_reliability("auto", [RELIABLE, BEST_EFFORT, BEST_EFFORT])[1] == "auto: 2 of 3 publisher(s) best effort"
    assert choose_reliability("auto", [RELIABLE, RELIABLE])[1] == "auto: all 2 publisher(s) reliable"


@pytest.mark.parametrize("mode", [RELIABLE, BEST_EFFORT])
def test_explicit_modes_are_kept_whatever_is_offered(mode):
    for offered in ([], [RELIABLE], [BEST_EFFORT], [RELIABLE, BEST_EFFORT]):
        assert choose_reliability(mode, offered) == (mode, "set by image_qos")


def test_bad_mode_or_offer_is_one_clear_error():
    with pytest.raises(ValueError, match="image QoS mode"):
        choose_reliability("sensor_data", [])
    with pytest.raises(ValueError, match="unknown offered reliability"):
        choose_reliability("auto", ["system_default"])


def feed(gaps: StampGaps, frame_numbers, period_ns=PERIOD_NS, start_ns=1_000_000_000_000):
    for n in frame_numbers:
        gaps.add(start_ns + n * period_ns)


def test_no_loss_gives_the_camera_rate_and_zero_loss():
    gaps = StampGaps()
    feed(gaps, range(100))
    assert gaps.camera_rate_hz == pytest.approx(30.0, rel=1e-6)
    assert gaps.recent_loss_ratio == 0.0 and gaps.lost_total == 0


def test_every_other_frame_lost_is_half_of_what_the_camera_sent():
    """Hand-worked: frames 0, 2, 4, ... arrive. But with every interval two periods long, the
    stamps alone cannot tell a 15 Hz camera from a 30 Hz one that loses half: the estimate says
    15 Hz and no loss. Add a few consecutive frames and the true period shows."""
    gaps = StampGaps()
    feed(gaps, range(0, 200, 2))
    assert gaps.camera_rate_hz == pytest.approx(15.0, rel=1e-6) and gaps.recent_loss_ratio == 0.0
    gaps = StampGaps()
    # 40 frames: pairs (4k, 4k+1), then a gap of 3 periods (2 lost) -> 40 intervals: 20 of 1 period, 19 of 3
    feed(gaps, [n for k in range(20) for n in (4 * k, 4 * k + 1)])
    assert gaps.camera_rate_hz == pytest.approx(30.0, rel=1e-6)
    # 39 intervals: 20 single, 19 spanning 3 periods (2 lost each) -> 38 lost of 40 + 38 sent
    assert gaps.recent_loss_ratio == pytest.approx(38 / (40 + 38))


@pytest.mark.parametrize("arriving", [0.4, 0.2, 0.13])  # what Fast DDS's defaults let through (issue 24, here)
def test_random_loss_is_estimated_from_jittered_stamps(arriving):
    rng = np.random.default_rng(7)
    kept = np.flatnonzero(rng.random(3000) < arriving)
    gaps = StampGaps(window=len(kept), pause_s=10.0)  # at 87 % loss some gaps exceed the default 1 s
    start = 5_000_000_000
    for n in kept:
        gaps.add(start + n * PERIOD_NS + int(rng.normal(0, 1e6)))  # 1 ms stamp jitter
    assert gaps.camera_rate_hz == pytest.approx(30.0, rel=0.05)
    assert gaps.recent_loss_ratio == pytest.approx(1 - len(kept) / (kept[-1] - kept[0] + 1), abs=0.01)
    assert gaps.lost_total == pytest.approx(kept[-1] - kept[0] + 1 - len(kept), rel=0.02)


def test_a_jittery_publisher_that_loses_nothing_shows_no_loss():
    """Stamps taken when a loaded publisher thread wakes: some late by 60 % of a period, the next
    on time again (seen in tests/ros/test_perception_cameras.py's camera thread, load 14)."""
    rng = np.random.default_rng(3)
    gaps = StampGaps()
    late = rng.random(300) < 0.15
    for n in range(300):
        gaps.add(10**12 + n * PERIOD_NS + int(late[n] * 0.6 * PERIOD_NS) + int(rng.normal(0, 2e6)))
    assert gaps.camera_rate_hz == pytest.approx(30.0, rel=0.03)
    assert gaps.recent_loss_ratio == 0.0 and gaps.lost_total == 0


def test_pauses_restarts_and_unstamped_images_are_not_loss():
    gaps = StampGaps(pause_s=1.0)
    feed(gaps, range(20))
    feed(gaps, range(20 + 90, 20 + 120))  # 3 s pause of the camera
    assert gaps.recent_loss_ratio == 0.0 and gaps.lost_total == 0 and gaps.restarts == 1
    feed(gaps, range(5), start_ns=10)  # a replay starting again: stamps go back
    assert gaps.restarts == 2
    assert gaps.period_ns is None  # restarted: too few intervals again
    unstamped = StampGaps()
    for _ in range(50):
        unstamped.add(0)
    assert unstamped.camera_rate_hz is None and unstamped.recent_loss_ratio is None
    repeated = StampGaps()
    feed(repeated, [n // 2 for n in range(60)])  # each stamp twice (a driver re-publishing)
    assert repeated.recent_loss_ratio == 0.0 and repeated.camera_rate_hz == pytest.approx(30.0)


def test_a_camera_restarting_at_half_the_rate_is_not_loss():
    """After a pause the camera may come back at another rate: the 30 Hz period must not make
    every 15 Hz interval look like a lost frame (seen in benchmarks/camera_path.py's runs)."""
    gaps = StampGaps()
    feed(gaps, range(150))  # 5 s at 30 Hz
    feed(gaps, range(0, 150, 1), period_ns=2 * PERIOD_NS, start_ns=1_000_000_000_000 + 7 * 10**9)
    assert gaps.camera_rate_hz == pytest.approx(15.0) and gaps.lost_total == 0


def test_monitor_reports_transport_loss_per_camera_and_warns():
    clock = [0.0]
    monitor = ProcessingMonitor(clock=lambda: clock[0], cameras=["/a", "/b"])
    for n in range(60):
        clock[0] = n / 30
        monitor.received("/a", 1_000_000_000 + n * PERIOD_NS)  # all of camera a
        if n % 4 != 3:  # camera b loses every 4th frame
            monitor.received("/b", 1_000_000_000 + n * PERIOD_NS)
    snap = monitor.snapshot()
    a, b = snap.cameras["/a"], snap.cameras["/b"]
    assert a.input_loss_ratio == 0.0 and a.camera_rate_hz == pytest.approx(30.0)
    assert b.camera_rate_hz == pytest.approx(30.0)
    # b: 45 frames, 44 intervals, the 14 spanning two periods lack one frame each
    assert b.input_loss_ratio == pytest.approx(14 / (45 + 14))
    assert snap.input_loss_ratio == b.input_loss_ratio  # the node reports the worst camera
    assert snap.lost_before_node == a.lost_before_node + b.lost_before_node > 0
    th = Thresholds(min_rate_warn_hz=0.0, min_rate_error_hz=0.0)  # nothing is processed here
    assert evaluate_camera(a, th).level == OK
    report = evaluate_camera(b, th)
    assert report.level == WARN and report.message.startswith("24% of the camera's recent frames lost before the node")
    assert ("recent input loss ratio", "0.24") in report.values
    assert ("camera rate from stamps (Hz)", "30.0") in report.values
    assert evaluate_camera(b, replace(th, input_loss_error_ratio=0.2)).level == ERROR
