"""Perception results per input frame, read back from a replay's JSON-lines or results bag, or
accumulated live from messages (the eval node) — one shape for the scorer either way."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..messages import array_msg_to_estimates
from ..types import Box, EmotionEstimate
from .bags import EMOTION_ARRAY, RESULTS_TOPIC, STRING, BagError, BagReader, latency_topic

log = logging.getLogger(__name__)


class ResultsError(ValueError):
    """Results that cannot be read (bad JSON line, a bag without results)."""


@dataclass
class FrameResult:
    index: int  # 0-based position of the frame in the recording
    stamp_ns: int
    processed: bool = True
    latency_ms: float | None = None
    estimates: list[EmotionEstimate] = field(default_factory=list)

    def main_face(self) -> EmotionEstimate | None:
        """The largest face box (the person closest to the camera), or None."""
        return max(self.estimates, key=lambda e: e.box.area, default=None)

    def face(self, face_id: str) -> EmotionEstimate | None:
        return next((e for e in self.estimates if str(e.face_id) == face_id), None)


@dataclass
class Results:
    frames: list[FrameResult]
    label_messages: list[tuple[int, str]] = field(default_factory=list)  # (log time ns, text)
    source: str = ""

    @property
    def t0_ns(self) -> int:
        return self.frames[0].stamp_ns if self.frames else 0

    @property
    def end_ns(self) -> int:
        return self.frames[-1].stamp_ns if self.frames else 0

    def seconds(self, frame: FrameResult) -> float:
        return (frame.stamp_ns - self.t0_ns) / 1e9


def _estimate(face: dict, stamp_ns: int) -> EmotionEstimate:
    x, y, w, h = face["box"]
    polarity = face.get("polarity_probs")
    return EmotionEstimate(
        face_id=str(face["id"]), box=Box(x, y, w, h),
        probabilities=np.asarray(face["probs"], np.float32), frames_used=int(face.get("frames_used", 1)),
        model_id=face.get("model_id", ""), stamp_ns=stamp_ns,
        polarity_probabilities=None if polarity is None else np.asarray(polarity, np.float32),
        person_id=str(face.get("person", "")),  # absent in files written before person ids
    )


def load_jsonl(path: str | Path) -> Results:
    """A replay's JSON-lines file (lines in any order; sorted by frame index here)."""
    path = Path(path)
    frames = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ResultsError(f"cannot read results {path}: {exc.strerror or exc}") from None
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            stamp = int(rec["stamp_ns"])
            frames.append(FrameResult(int(rec["frame"]), stamp, bool(rec["processed"]), rec.get("latency_ms"),
                                      [_estimate(f, stamp) for f in rec.get("faces", [])]))
        except (ValueError, KeyError, TypeError) as exc:
            if number == last:  # the line a crash cut off: the frames before it still count
                log.warning("%s:%d: ignoring an incomplete last line (%s)", path, number, exc)
                continue
            raise ResultsError(f"{path}:{number}: not a results line ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise ResultsError(f"results file {path} has no frames")
    frames.sort(key=lambda f: f.index)
    return Results(frames, source=str(path))


def load_results_bag(path: str | Path, results_topic: str = RESULTS_TOPIC, image_topic: str | None = None,
                     label_topic: str | None = None) -> Results:
    """A results bag: frames = its images (dropped = images without a results message)."""
    with BagReader(path) as bag:
        if results_topic not in bag.topics or bag.topics[results_topic] != EMOTION_ARRAY:
            have = [t for t, m in bag.topics.items() if m == EMOTION_ARRAY]
            raise ResultsError(f"bag {path} has no {EMOTION_ARRAY} on {results_topic}"
                               f" (EmotionStateArray topics: {', '.join(have) or 'none'})")
        if label_topic and label_topic not in bag.topics:
            strings = [t for t, m in bag.topics.items() if m == STRING]
            raise ResultsError(f"bag {path} has no label topic {label_topic} (String topics: {', '.join(strings) or 'none'})")
        images = [bag.image_topic(image_topic)] if bag.image_topics() else []
        lat_topic = latency_topic(results_topic)
        stamps: list[int] = []
        arrays: dict[int, list[EmotionEstimate]] = {}
        latency_by_log: dict[int, float] = {}
        log_of_stamp: dict[int, int] = {}
        labels: list[tuple[int, str]] = []
        for m in bag.messages([*images, results_topic, lat_topic, *([label_topic] if label_topic else [])]):
            msg = bag.deserialize(m)
            if m.topic == results_topic:
                stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
                arrays[stamp] = array_msg_to_estimates(msg)
                log_of_stamp[stamp] = m.log_time_ns
            elif m.topic == lat_topic:
                latency_by_log[m.log_time_ns] = float(msg.data)
            elif m.topic == label_topic:
                labels.append((m.log_time_ns, str(msg.data)))
            else:
                stamps.append(int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec))
    if not stamps:  # a bag of results only: every result is a processed frame
        stamps = sorted(arrays)
    frames = []
    for index, stamp in enumerate(sorted(stamps)):
        processed = stamp in arrays
        latency = latency_by_log.get(log_of_stamp[stamp]) if processed else None
        frames.append(FrameResult(index, stamp, processed, latency, arrays.get(stamp, [])))
    if not frames:
        raise ResultsError(f"bag {path} holds no frames")
    return Results(frames, labels, str(path))


def load_results(path: str | Path, **bag_options) -> Results:
    """JSON-lines (a file ending .jsonl/.json) or a results bag (anything else)."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"no results at {path}")
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return load_jsonl(path)
    try:
        return load_results_bag(path, **bag_options)
    except BagError as exc:
        raise ResultsError(str(exc)) from None


class ResultsAccumulator:
    """Collects results live (eval node): arrays as they arrive, image stamps if subscribed.

    With ``recording_stamps`` (the played bag's image stamps, in recorded order) the frames are the
    recording's: frame i is recording_stamps[i] as offline, and a frame with no results message —
    lost before discovery, dropped by the node — counts as dropped; results for other stamps are
    not scored (``outside_recording`` counts them). Without it, frame indices are positions in
    stamp order of what arrived: with image stamps known, an image without a results message counts
    as dropped, but frames lost before the first arrival shift every index after them.
    """

    def __init__(self, recording_stamps: list[int] | None = None):
        self._arrays: dict[int, tuple[list[EmotionEstimate], float | None]] = {}
        self._images: set[int] = set()
        self._recording = None if recording_stamps is None else [int(s) for s in recording_stamps]
        self.labels: list[tuple[int, str]] = []

    def add_results(self, stamp_ns: int, estimates: list[EmotionEstimate], latency_ms: float | None = None) -> None:
        self._arrays[int(stamp_ns)] = (list(estimates), latency_ms)

    def add_image(self, stamp_ns: int) -> None:
        self._images.add(int(stamp_ns))

    def add_label(self, stamp_ns: int, text: str) -> None:
        self.labels.append((int(stamp_ns), text))

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def outside_recording(self) -> int:
        """Results whose stamp is no frame of the recording (0 without one)."""
        return 0 if self._recording is None else len(set(self._arrays) - set(self._recording))

    def results(self, source: str = "live") -> Results:
        stamps = self._recording if self._recording is not None else sorted(self._images | set(self._arrays))
        frames = []
        for index, stamp in enumerate(stamps):
            estimates, latency = self._arrays.get(stamp, ([], None))
            frames.append(FrameResult(index, stamp, stamp in self._arrays, latency, estimates))
        return Results(frames, sorted(self.labels), source)
