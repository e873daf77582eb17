"""How images reach the node, ROS-free: the subscription's reliability, and frames lost before it.

``choose_reliability`` picks the subscription's reliability from what the publishers offer (as
rosbag2's recorder adapts to the offered QoS): reliable only when every publisher is reliable,
so a reliable camera gets DDS retransmission of lost fragments, and best effort otherwise, the
one setting that receives from any publisher.

``StampGaps`` estimates the camera's own rate from the image header stamps and counts the frames
missing between consecutive stamps: images lost in transport, which the node never sees and so
cannot count as dropped (sensor_msgs/Image has no sequence number in ROS 2; the stamps are it).
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np

QOS_MODES = ("auto", "reliable", "best_effort")
RELIABLE, BEST_EFFORT = "reliable", "best_effort"


def choose_reliability(mode: str, offered: Iterable[str]) -> tuple[str, str]:
    """(reliability, why) for a subscription in ``mode`` given the publishers' offered
    reliabilities (``reliable`` / ``best_effort`` each). An explicit mode is kept whatever is
    offered; ``auto`` is reliable when every publisher is reliable, best effort otherwise (also
    with no publisher yet: it receives from whichever comes)."""
    if mode not in QOS_MODES:
        raise ValueError(f"image QoS mode must be one of {', '.join(QOS_MODES)}, got {mode!r}")
    offered = list(offered)
    if mode != "auto":
        return mode, "set by image_qos"
    if not offered:
        return BEST_EFFORT, "auto: no publisher yet"
    unknown = sorted(set(offered) - {RELIABLE, BEST_EFFORT})
    if unknown:
        raise ValueError(f"unknown offered reliability {unknown[0]!r}")
    reliable = offered.count(RELIABLE)
    if reliable == len(offered):
        return RELIABLE, f"auto: all {len(offered)} publisher(s) reliable"
    return BEST_EFFORT, f"auto: {len(offered) - reliable} of {len(offered)} publisher(s) best effort"


class StampGaps:
    """The camera's rate and the frames missing before the node, from header stamps (ns).

    The camera period is a low percentile (``period_quantile``) of the recent stamp intervals:
    the interval of two consecutive frames, even when most are lost (with up to about 90 %
    random loss, more than 5 % of the intervals still span one period; Fast DDS's defaults lost
    80 % of 640x480 rgb8 images at 30 Hz on a busy machine). A gap of ``k`` periods
    means ``k - 1`` frames were lost. A gap longer than ``pause_s`` is a pause of the camera (or
    a restart, perhaps at another rate), not loss, and a stamp going backwards a replay starting
    again: both restart the estimate. Zero stamps (a camera that does not stamp) and repeated
    stamps carry no information and are ignored.
    """

    def __init__(self, window: int = 150, period_quantile: float = 0.05, min_intervals: int = 10,
                 pause_s: float = 1.0):
        self._intervals: deque[int] = deque(maxlen=window)  # ns between consecutive stamps
        self._quantile = period_quantile
        self._min_intervals = min_intervals
        self._pause_ns = int(pause_s * 1e9)
        self._last: int | None = None
        self.lost_total = 0  # estimated frames lost since the start (0 until the rate is known)
        self.restarts = 0  # stamps that went backwards or paused

    def add(self, stamp_ns: int) -> None:
        if stamp_ns <= 0:
            return
        last, self._last = self._last, stamp_ns
        if last is None:
            return
        interval = stamp_ns - last
        if interval < 0 or interval > self._pause_ns:
            self.restarts += 1
            self._intervals.clear()
            return
        if interval == 0:
            return
        self._intervals.append(interval)
        period = self.period_ns
        if period is not None:
            self.lost_total += _missing(np.array([interval]), period)

    @property
    def period_ns(self) -> float | None:
        """The camera's frame period, once ``min_intervals`` intervals were seen."""
        if len(self._intervals) < self._min_intervals:
            return None
        return float(np.quantile(np.fromiter(self._intervals, np.int64), self._quantile))

    @property
    def camera_rate_hz(self) -> float | None:
        period = self.period_ns
        return None if period is None else 1e9 / period

    @property
    def recent_loss_ratio(self) -> float | None:
        """Lost / sent over the recent intervals (sent = received + lost), or None while unknown."""
        period = self.period_ns
        if period is None:
            return None
        lost = _missing(np.fromiter(self._intervals, np.int64), period)
        return lost / (len(self._intervals) + 1 + lost)  # the intervals join one more frame than they are


def _missing(intervals: np.ndarray, period: float) -> int:
    """Frames missing in these intervals: an interval of k periods lacks k - 1 frames."""
    return int(np.maximum(np.rint(intervals / period) - 1, 0).sum())
