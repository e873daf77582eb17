"""The recording jobs behind the command line (record, run, eval), as plain functions.

They validate inputs before doing expensive work (a wrong topic fails before a model loads) and
raise the module-specific errors (BagError, VideoError, LabelsError, ResultsError) that the CLI
turns into one line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..llm.context import ContextConfig
from . import context_eval
from .bags import DEFAULT_BAG_VERSION, DEFAULT_STORAGE, RESULTS_TOPIC, STRING, BagError, BagReader, write_image_bag
from .labels_file import Labels, LabelsError, labels_from_messages, load_labels
from .report import write_report
from .results import ResultsError, load_results
from .scoring import Evaluation, evaluate
from .video import DEFAULT_FPS, open_source

if TYPE_CHECKING:  # replay imports the engine and torch: only `run` needs them, not `eval`
    from .replay import Item, ReplaySummary, ResultSink

BAG_SUFFIXES = (".mcap", ".db3")


def is_bag(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() or path.suffix in BAG_SUFFIXES


def record(source: str, out: str | Path, topic: str | None = None, encoding: str = "rgb8",
           storage: str = DEFAULT_STORAGE, version: int = DEFAULT_BAG_VERSION, frame_id: str = "camera",
           start_ns: int | None = None, max_frames: int = 0, duration: float = 0.0) -> int:
    """Video file or camera index -> a new image bag. Returns the number of frames written."""
    frames = open_source(source, start_ns, frame_id, max_frames, duration)
    if max_frames and not str(source).isdigit():
        frames = _first(frames, max_frames)
    return write_image_bag(frames, out, topic, encoding, storage, version)


def _first(frames, n: int):
    for i, frame in enumerate(frames):
        if i >= n:
            return
        yield frame


@dataclass
class Input:
    """An opened run input: ``items(sink)`` yields frames (bag label topics pass into the sink)."""

    kind: str  # bag | video | camera
    description: str
    total: int | None
    fps: float
    reader: BagReader | None = None
    source: object = None
    topic: str | None = None
    label_topic: str | None = None
    max_frames: int = 0

    def items(self, sink: ResultSink | None = None) -> Iterator[Item]:
        from .replay import bag_items, frame_items

        if self.reader is not None:
            passthrough = [self.label_topic] if self.label_topic else []
            items = bag_items(self.reader, self.topic, passthrough, sink.add_passthrough if sink else None)
        else:
            items = frame_items(self.source)
        for item in items:
            if self.max_frames and item.index >= self.max_frames:
                return
            yield item

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def open_input(spec: str, topic: str | None = None, label_topic: str | None = None, start_ns: int | None = None,
               frame_id: str = "camera", max_frames: int = 0) -> Input:
    """A bag (directory / .mcap / .db3), a video file, or a camera index; checked up front."""
    if is_bag(spec):
        reader = BagReader(spec)
        try:
            topic = reader.image_topic(topic)
            if label_topic and reader.topics.get(label_topic) != STRING:
                strings = sorted(t for t, m in reader.topics.items() if m == STRING)
                raise BagError(f"bag {spec} has no {STRING} topic {label_topic} (String topics: {', '.join(strings) or 'none'})")
        except BagError:
            reader.close()
            raise
        count = reader.count(topic)
        total = min(count, max_frames) if max_frames else count
        fps = reader.frame_rate(topic) or DEFAULT_FPS  # the annotated video plays at the recorded pace
        return Input("bag", f"bag {spec} topic {topic}", total, fps, reader=reader, topic=topic,
                     label_topic=label_topic, max_frames=max_frames)
    if label_topic:
        raise BagError("--label-topic needs a bag input (label topics live in bags)")
    source = open_source(spec, start_ns, frame_id, max_frames if str(spec).isdigit() else 0)
    kind = "camera" if str(spec).isdigit() else "video"
    total = len(source) or None
    if max_frames and total:
        total = min(total, max_frames)
    return Input(kind, f"{kind} {spec}", total, source.fps, source=source, max_frames=max_frames)


def run(inp: Input, engine, out_dir: str | Path, rate: str = "max", results_topic: str = RESULTS_TOPIC,
        storage: str = DEFAULT_STORAGE, version: int = DEFAULT_BAG_VERSION, video_out: str | Path | None = None,
        progress: bool = True, image_encoding: str = "jpeg", info: dict | None = None) -> ReplaySummary:
    """Replay ``inp`` through ``engine`` into ``out_dir`` (results/ bag, results.jsonl, run.json)."""
    from .replay import ResultSink, replay

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        sink = ResultSink(out / "results", out / "results.jsonl", results_topic=results_topic,
                          image_encoding=image_encoding, storage=storage, version=version,
                          video_path=Path(video_out) if video_out else None, fps=inp.fps)
        summary = replay(engine, inp.items(sink), sink, rate=rate, progress=progress, total=inp.total)
    finally:
        inp.close()
    record_ = {"input": inp.description, **(info or {}), **summary.to_dict()}
    (out / "run.json").write_text(json.dumps(record_, indent=2) + "\n")
    summary.outputs["summary"] = str(out / "run.json")
    return summary


def _topic_labels(results, label_topic: str | None) -> Labels:
    if label_topic is None:
        raise LabelsError("give a labels file (--labels) or a label topic in the results bag (--label-topic)")
    if not results.label_messages:
        raise LabelsError(f"results {results.source} hold no messages on label topic {label_topic}")
    return labels_from_messages(results.label_messages, results.t0_ns, results.end_ns, f"label topic {label_topic}")


def evaluate_results(results_path: str | Path, out_dir: str | Path, labels_path: str | Path | None = None,
                     units: str = "frames", label_topic: str | None = None, results_topic: str = RESULTS_TOPIC,
                     image_topic: str | None = None, info: dict | None = None,
                     title: str = "Emotion perception evaluation",
                     context: ContextConfig | None = None) -> tuple[Evaluation, dict[str, Path]]:
    """Score a results JSON-lines file or results bag against labels, and what the LLM hears
    (``context``: the bridge's context configuration, default the node's); write the report."""
    path = Path(results_path)
    if label_topic and not is_bag(path):
        raise ResultsError("--label-topic needs a results bag, not a JSON-lines file")
    labels = load_labels(labels_path, units) if labels_path is not None else None  # bad labels fail first
    if is_bag(path):
        results = load_results(path, results_topic=results_topic, image_topic=image_topic, label_topic=label_topic)
    else:
        results = load_results(path)
    labels = labels or _topic_labels(results, label_topic)
    if info is None:
        run_json = path.parent / "run.json"  # written by `run` next to results/ and results.jsonl
        if run_json.is_file():
            run_info = json.loads(run_json.read_text())
            info = {k: run_info[k] for k in ("profile", "reason", "input", "rate") if k in run_info}
    ev = evaluate(results, labels)
    ev.context = context_eval.replay_results(results, labels, context or ContextConfig())
    return ev, write_report(ev, out_dir, title, info)
