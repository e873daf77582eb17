"""The live evaluator behind ``eval_node``: the offline report, fed from messages (ROS-free).

During ``ros2 bag play`` the node hands over each EmotionStateArray (as estimates), optionally
each input image stamp (so frames without results count as dropped) and label-topic strings;
``write`` scores them with the same code as ``emotion-perception eval`` and writes the same
report, so offline and online scores compare.

Frame numbers: with ``recording`` (the bag being played) frame i is the recording's i-th image, as
offline, found by its stamp; frames never received (lost while discovery was still matching the
player's publishers, or dropped) are reported as dropped. Without it the frames are numbered in
order of arrival, so frames lost at the start shift frame-unit labels.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..parameters import Param
from .bags import BagError, image_stamps
from .labels_file import UNITS, Labels, labels_from_messages, load_labels
from .report import write_report
from .results import ResultsAccumulator
from .scoring import Evaluation, evaluate


PARAMETERS: tuple[Param, ...] = (
    Param("results_topic", "emotions", "EmotionStateArray topic to score (relative names follow the namespace)"),
    Param("image_topic", "", "optional camera topic; its stamps count the input frames, so frames without "
          "results are reported as dropped and frame-unit labels line up with the recording"),
    Param("image_transport", "raw", "raw (sensor_msgs/Image) or compressed (CompressedImage) for image_topic"),
    Param("labels_file", "", "labels CSV (start,end,label[,face_id]); empty: use label_topic"),
    Param("units", "frames", "units of labels_file ranges: frames or seconds (since the first frame)"),
    Param("label_topic", "", "std_msgs/String topic of class names, used when labels_file is empty"),
    Param("recording", "", "the bag being played; its image stamps number the frames as offline, so frames "
          "never received count as dropped instead of shifting the labels (empty: number frames as they arrive)"),
    Param("recording_topic", "", "image topic in recording to number the frames by (empty: its only image topic)"),
    Param("output_dir", "eval_report", "directory for report.json/.md/.html and the plots"),
    Param("title", "Emotion perception evaluation (live)", "report title"),
    Param("measure_latency", True, "record node clock minus result stamp as latency; meaningful with "
          "use_sim_time during `ros2 bag play --clock`, or on a live camera"),
)
DEFAULTS = {p.name: p.default for p in PARAMETERS}
# A result older than this on arrival means the clocks differ (e.g. a bag played without
# use_sim_time), not that perception took that long: no latency is recorded then.
MAX_LATENCY_S = 60.0


class LiveEvaluator:
    """Collects results from callbacks (thread-safe) and writes the report on demand."""

    def __init__(self, values: dict | None = None):
        v = {**DEFAULTS, **(values or {})}
        if v["units"] not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {v['units']!r}")
        if v["image_transport"] not in ("raw", "compressed"):
            raise ValueError(f"image_transport must be raw or compressed, got {v['image_transport']!r}")
        if not v["labels_file"] and not v["label_topic"]:
            raise ValueError("set labels_file or label_topic: there is nothing to score against")
        self.values = v
        # a bad labels file fails at start-up, not after a whole recording
        self.labels: Labels | None = load_labels(v["labels_file"], v["units"]) if v["labels_file"] else None
        stamps = None
        if v["recording"]:
            try:
                stamps = image_stamps(v["recording"], v["recording_topic"] or None)
            except BagError as exc:
                raise ValueError(f"recording: {exc}") from None
            if not stamps:
                raise ValueError(f"recording {v['recording']} holds no images to number the frames by")
        self._acc = ResultsAccumulator(stamps)
        self._lock = threading.Lock()

    def add_results(self, stamp_ns: int, estimates, now_ns: int | None = None) -> None:
        latency = None
        if self.values["measure_latency"] and now_ns is not None and 0 <= now_ns - stamp_ns <= MAX_LATENCY_S * 1e9:
            latency = (now_ns - stamp_ns) / 1e6
        with self._lock:
            self._acc.add_results(stamp_ns, estimates, latency)

    def add_image(self, stamp_ns: int) -> None:
        with self._lock:
            self._acc.add_image(stamp_ns)

    def add_label(self, stamp_ns: int, text: str) -> None:
        with self._lock:
            self._acc.add_label(stamp_ns, text)

    @property
    def count(self) -> int:
        return len(self._acc)

    def write(self, extra: dict | None = None) -> tuple[Evaluation, dict[str, Path]]:
        """Score everything received so far and (over)write the report."""
        with self._lock:
            results = self._acc.results(f"live {self.values['results_topic']}")
            received, outside = len(self._acc), self._acc.outside_recording
        if not received:
            raise ValueError("no results received yet")
        if outside == received:
            raise ValueError(f"none of the {received} results has the stamp of an image in {self.values['recording']}: "
                             "is that the bag being played?")
        if outside:
            extra = {**(extra or {}), "results outside the recording (not scored)": outside}
        labels = self.labels or labels_from_messages(results.label_messages, results.t0_ns, results.end_ns,
                                                     f"label topic {self.values['label_topic']}")
        ev = evaluate(results, labels)
        return ev, write_report(ev, self.values["output_dir"], self.values["title"], extra)
