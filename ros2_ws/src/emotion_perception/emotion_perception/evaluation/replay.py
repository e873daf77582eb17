"""Feed a recording (bag, video or camera) through the perception engine and keep the results.

Outputs, all written as frames go by and closed properly on an error or Ctrl-C (what was
computed stays readable):

- a rosbag2 with ``emotion_msgs/EmotionStateArray`` on the results topic (one message per
  processed frame, header = the image's), the input images copied in (byte for byte from a bag;
  as Image / CompressedImage from a video), any std_msgs/String label topic of an input bag, and
  ``std_msgs/Float64`` latencies on ``<results topic>/latency_ms``. Every message's log time is
  its image's stamp (the bag's log time for copied messages), so ``ros2 bag play`` and Foxglove
  show images and emotions together.
- a JSON-lines file, one line per input frame (``frame`` index, ``stamp_ns``, ``processed``,
  ``latency_ms``, ``faces``: id, box [x, y, w, h], class, probs, polarity ...). Lines are in
  completion order; at recorded rate a dropped frame's line can precede an earlier frame's.
- optionally an annotated video of the processed frames.

Rates: ``max`` processes every frame as fast as the engine goes. ``recorded`` plays frames at
their stamps' pace into a ``LatestFrameWorker``: when the engine is slower than the recording,
stale frames are dropped (and counted) exactly as on the robot.
"""
from __future__ import annotations

import json
import queue
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..engine import LatestFrameWorker
from ..messages import MessageTypes, estimates_to_array_msg
from ..types import EmotionEstimate, Frame
from .bags import (DEFAULT_BAG_VERSION, DEFAULT_STORAGE, EMOTION_ARRAY, FLOAT64, RESULTS_TOPIC, BagMessage,
                   BagReader, BagWriter, default_image_topic, image_message, latency_topic)
from .video import VideoWriter

RATES = ("max", "recorded")


@dataclass
class Item:
    """One input frame, with the stored message when it came from a bag (copied verbatim)."""

    index: int
    frame: Frame
    message: BagMessage | None = None


def bag_items(reader: BagReader, topic: str | None, passthrough_topics=(), passthrough=None) -> Iterator[Item]:
    """Items of a bag's image topic; messages of ``passthrough_topics`` go to ``passthrough``."""
    topic = reader.image_topic(topic)
    index = 0
    for message in reader.messages([topic, *passthrough_topics]):
        if message.topic != topic:
            if passthrough is not None:
                passthrough(message)
            continue
        yield Item(index, reader.frame(message), message)
        index += 1


def frame_items(frames: Iterable[Frame]) -> Iterator[Item]:
    for index, frame in enumerate(frames):
        yield Item(index, frame)


def face_record(est: EmotionEstimate) -> dict:
    valence, arousal = est.valence_arousal
    return {
        "id": str(est.face_id),
        "person": str(est.person_id),
        "box": [round(float(v), 2) for v in (est.box.x, est.box.y, est.box.w, est.box.h)],
        "class": est.class_name,
        "class_id": est.class_id,
        "confidence": round(est.confidence, 5),
        "probs": [round(float(p), 5) for p in est.probabilities],
        "polarity": est.polarity_name,
        "polarity_probs": None if est.polarity_probabilities is None
        else [round(float(p), 5) for p in est.polarity_probabilities],
        "valence": round(valence, 4),
        "arousal": round(arousal, 4),
        "frames_used": int(est.frames_used),
        "model_id": est.model_id,
    }


class ResultSink:
    """The outputs of one replay (results bag, JSON-lines, optional annotated video)."""

    def __init__(self, bag_path: Path, jsonl_path: Path, *, results_topic: str = RESULTS_TOPIC,
                 image_topic: str | None = None, image_encoding: str = "jpeg", storage: str = DEFAULT_STORAGE,
                 version: int = DEFAULT_BAG_VERSION, video_path: Path | None = None, fps: float = 30.0):
        self.video = VideoWriter(video_path, fps) if video_path else None  # checks the file type first
        self.bag = BagWriter(bag_path, storage, version)
        self.jsonl_path = Path(jsonl_path)
        try:
            self.jsonl = self.jsonl_path.open("w")
        except OSError:
            self.bag.close()
            raise
        self.types = MessageTypes.from_typestore(self.bag.store)
        self.results_topic = results_topic
        self.image_topic = image_topic or default_image_topic(image_encoding)
        self.image_encoding = image_encoding
        self._draw = None
        if self.video is not None:
            from ..visualize import draw_estimates

            self._draw = draw_estimates
        self.frames = self.processed = self.dropped = self.faces = 0

    def add_input(self, item: Item) -> None:
        """Copy the input image (and pass-through messages) into the results bag."""
        if item.message is not None:
            m = item.message
            self.bag.write_raw(m.topic, m.msgtype, m.log_time_ns, m.data)
        else:
            f = item.frame
            msgtype, msg = image_message(self.bag.store, f.image, f.stamp_ns, f.frame_id, self.image_encoding)
            self.bag.write(self.image_topic, msgtype, f.stamp_ns, msg)
        self.frames += 1

    def add_passthrough(self, message: BagMessage) -> None:
        self.bag.write_raw(message.topic, message.msgtype, message.log_time_ns, message.data)

    def _line(self, record: dict) -> None:
        self.jsonl.write(json.dumps(record) + "\n")

    def add_result(self, item: Item, estimates: list[EmotionEstimate], latency_ms: float) -> None:
        f = item.frame
        log_ns = item.message.log_time_ns if item.message is not None else f.stamp_ns
        header = self.types.header(f.stamp_ns, f.frame_id)
        size = (f.image.shape[1], f.image.shape[0])
        self.bag.write(self.results_topic, EMOTION_ARRAY, log_ns,
                       estimates_to_array_msg(estimates, header, self.types, size))
        self.bag.write(latency_topic(self.results_topic), FLOAT64, log_ns,
                       self.bag.store.types[FLOAT64](data=float(latency_ms)))
        stages = {}
        for est in estimates:
            stages.update(est.timings_ms or {})
        self._line({"frame": item.index, "stamp_ns": f.stamp_ns, "frame_id": f.frame_id, "processed": True,
                    "latency_ms": round(float(latency_ms), 3), "timings_ms": stages,
                    "faces": [face_record(e) for e in estimates]})
        if self.video is not None:
            self.video.write(self._draw(f.image, estimates))
        self.processed += 1
        self.faces += len(estimates)

    def add_drop(self, item: Item) -> None:
        f = item.frame
        self._line({"frame": item.index, "stamp_ns": f.stamp_ns, "frame_id": f.frame_id, "processed": False,
                    "latency_ms": None, "faces": []})
        self.dropped += 1

    def close(self) -> None:
        try:
            self.jsonl.close()
            if self.video is not None:
                self.video.close()
        finally:
            self.bag.close()


@dataclass
class ReplaySummary:
    frames: int = 0
    processed: int = 0
    dropped: int = 0
    faces: int = 0
    wall_s: float = 0.0
    rate: str = "max"
    outputs: dict = field(default_factory=dict)
    interrupted: bool = False
    error: str | None = None
    engine: dict = field(default_factory=dict)
    video_note: str = ""  # why browsers will not play the annotated video, if they will not

    @property
    def fps(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": round(self.fps, 3)}


class _Progress:
    """tqdm bar showing processed frames/s and drops; silent when disabled."""

    def __init__(self, enabled: bool, total: int | None):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total or None, unit="frame", dynamic_ncols=True, desc="replay")

    def update(self, sink: ResultSink) -> None:
        if self.bar is not None and sink.frames > self.bar.n:
            self.bar.set_postfix(processed=sink.processed, dropped=sink.dropped, refresh=False)
            self.bar.update(sink.frames - self.bar.n)  # redraws at most every tqdm.mininterval

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_max(engine, items: Iterable[Item], sink: ResultSink, progress: _Progress) -> None:
    for item in items:
        sink.add_input(item)
        t0 = time.perf_counter()
        estimates = engine.process(item.frame)
        sink.add_result(item, estimates, (time.perf_counter() - t0) * 1e3)
        progress.update(sink)


def _run_recorded(engine, items: Iterable[Item], sink: ResultSink, progress: _Progress) -> None:
    """Submit frames at their recorded pace; the worker keeps only the newest waiting frame."""
    done: queue.Queue = queue.Queue()
    submitted: dict[int, tuple[Item, float]] = {}  # id(frame) -> (item, submit time)
    errors: list[str] = []

    def on_result(frame: Frame, estimates: list[EmotionEstimate]) -> None:
        done.put((id(frame), estimates, None, time.perf_counter()))

    def on_error(frame: Frame, exc: Exception) -> None:
        done.put((id(frame), None, exc, time.perf_counter()))

    def drain() -> None:
        while True:
            try:
                key, estimates, exc, t_done = done.get_nowait()
            except queue.Empty:
                return
            item, t_submit = submitted.pop(key)
            if exc is not None:
                errors.append(f"engine failed on frame {item.index}: {exc}")
                sink.add_drop(item)
            else:
                sink.add_result(item, estimates, (t_done - t_submit) * 1e3)
            progress.update(sink)

    def on_drop(frame: Frame) -> None:  # replaced by a newer frame, or pending at close
        sink.add_drop(submitted.pop(id(frame))[0])

    worker = LatestFrameWorker(engine, on_result, on_error, name="replay-engine", on_drop=on_drop)
    wall0 = stamp0 = None
    try:
        for item in items:
            stamp = item.frame.stamp_ns
            if wall0 is None:
                wall0, stamp0 = time.perf_counter(), stamp
            delay = (stamp - stamp0) / 1e9 - (time.perf_counter() - wall0)
            while delay > 0:  # wait for the frame's recorded time, writing results meanwhile
                drain()
                time.sleep(min(delay, 0.01))
                delay = (stamp - stamp0) / 1e9 - (time.perf_counter() - wall0)
            sink.add_input(item)
            submitted[id(item.frame)] = (item, time.perf_counter())
            worker.submit(item.frame)
            drain()
            if errors:
                break
            progress.update(sink)
        else:
            worker.wait_idle()
    finally:
        worker.close()
        drain()
        for item, _ in list(submitted.values()):  # still in the engine when close gave up waiting
            sink.add_drop(item)
    if errors:
        raise RuntimeError(errors[0])


def replay(engine, items: Iterable[Item], sink: ResultSink, rate: str = "max", progress: bool = True,
           total: int | None = None) -> ReplaySummary:
    """Run ``items`` through ``engine`` into ``sink``; never raises for input problems.

    An input error (damaged bag, undecodable frame), an engine error or Ctrl-C stop the replay;
    the sink is closed either way, and the summary says how far it got (``error`` /
    ``interrupted``).
    """
    if rate not in RATES:
        raise ValueError(f"rate must be one of {', '.join(RATES)}, got {rate!r}")
    summary = ReplaySummary(rate=rate)
    bar = _Progress(progress, total)
    start = time.perf_counter()
    try:
        (_run_max if rate == "max" else _run_recorded)(engine, items, sink, bar)
    except KeyboardInterrupt:
        summary.interrupted = True
    except Exception as exc:  # reported in the summary; the outputs so far are kept
        summary.error = str(exc) or type(exc).__name__
    finally:
        summary.wall_s = time.perf_counter() - start
        bar.close()
        sink.close()
    summary.frames, summary.processed, summary.dropped, summary.faces = sink.frames, sink.processed, sink.dropped, sink.faces
    summary.outputs = {"bag": str(sink.bag.path), "jsonl": str(sink.jsonl_path)}
    if sink.video is not None and sink.video.frames:
        summary.outputs["video"] = str(sink.video.path)
        summary.video_note = sink.video.browser_note
    stats = getattr(engine, "stats", None)
    summary.engine = _jsonable(stats()) if callable(stats) else {}
    return summary


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
