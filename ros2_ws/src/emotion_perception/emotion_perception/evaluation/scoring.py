"""Match results to labels frame by frame and score them (UAR/WAR via metrics.py only).

A sample is one (processed frame, labelled face): the main face (largest box) for ranges without
face_id, the named track otherwise. A labelled, processed frame where that face has no estimate
is *missed* (not a sample: the detector, not the classifier, failed there); dropped frames are
counted apart. Latency percentiles are over processed frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import CLASS_NAMES
from .context_eval import ContextScore
from .labels_file import Labels
from .metrics import Scores, score
from .results import Results


@dataclass(frozen=True)
class Sample:
    frame: int
    seconds: float
    face_id: str | None  # None: main face
    target: int
    prediction: int | None  # None: missed


@dataclass
class Evaluation:
    scores: Scores
    samples: list[Sample]
    frames: int
    processed: int
    dropped: int
    latencies_ms: np.ndarray
    unlabelled_with_faces: int  # processed frames outside every label range that had faces
    # per frame (main face): seconds, predicted class or None, processed
    timeline: list[tuple[float, int | None, bool]] = field(default_factory=list)
    labels: Labels | None = None
    source: str = ""
    warnings: list[str] = field(default_factory=list)  # labels that cannot fit the run (label_warnings)
    context: ContextScore | None = None  # what the LLM hears (context_eval.replay_results)

    @property
    def missed(self) -> int:
        return sum(s.prediction is None for s in self.samples)

    def latency_percentiles(self) -> dict[str, float | None]:
        if self.latencies_ms.size == 0:
            return {"p50": None, "p95": None, "p99": None, "mean": None}
        p50, p95, p99 = np.percentile(self.latencies_ms, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(self.latencies_ms.mean())}

    def to_dict(self) -> dict:
        scored = sum(s.prediction is not None for s in self.samples)
        return {
            **self.scores.to_dict(CLASS_NAMES),
            "source": self.source,
            "labels": self.labels.source if self.labels else None,
            "frames": self.frames,
            "processed_frames": self.processed,
            "dropped_frames": self.dropped,
            "labelled_samples": len(self.samples),
            "scored_samples": scored,
            "missed_faces": self.missed,
            "unlabelled_frames_with_faces": self.unlabelled_with_faces,
            "latency_ms": self.latency_percentiles(),
            "warnings": list(self.warnings),
            **(self.context.to_dict() if self.context is not None else {}),
        }


def label_warnings(results: Results, labels: Labels) -> list[str]:
    """What makes labels unfit for a run, which would otherwise only show as "UAR n/a" or 0 %:
    ranges that begin after the run's last frame, frame numbers read as seconds (or the reverse),
    and face ids the run never produced."""
    if not results.frames:
        return []
    warnings = []
    n = len(results.frames)
    last_s = results.seconds(results.frames[-1])
    ends = [r.end for r in labels.ranges]
    whole = all(float(v).is_integer() for r in labels.ranges for v in (r.start, r.end))
    if labels.units == "seconds" and whole and max(ends) > 2 * max(last_s, 1.0 / 30):
        warnings.append(f"{labels.source}: the ranges look like frame numbers (up to {max(ends):g}) but are read "
                        f"as seconds (the run lasts {last_s:.2f} s, {n} frames): use --units frames")
    if labels.units == "frames" and not whole:
        warnings.append(f"{labels.source}: fractional frame numbers: if these are seconds, use --units seconds")
    for r in labels.ranges:
        past = r.start >= n if labels.units == "frames" else r.start > last_s
        if past:
            run = f"{n} frames, 0-{n - 1}" if labels.units == "frames" else f"{last_s:.2f} s"
            warnings.append(f"{labels.source}:{r.line}: range [{r.start:g}, {r.end:g}) begins after the run's "
                            f"last frame ({run}); it scores nothing")
    seen = {str(e.face_id) for frame in results.frames for e in frame.estimates}
    for face_id in sorted(f for f in labels.face_ids if f is not None):
        if face_id not in seen:
            lines = ", ".join(str(r.line) for r in labels.ranges if r.face_id == face_id)
            warnings.append(f"{labels.source}: face_id {face_id} (line {lines}) never appears in the results "
                            f"(their face ids: {', '.join(sorted(seen)) or 'none'})")
    return warnings


def evaluate(results: Results, labels: Labels) -> Evaluation:
    faces = sorted(labels.face_ids, key=lambda f: (f is not None, f or ""))
    samples: list[Sample] = []
    timeline = []
    unlabelled = 0
    for frame in results.frames:
        seconds = results.seconds(frame)
        main = frame.main_face() if frame.processed else None
        timeline.append((seconds, None if main is None else main.class_id, frame.processed))
        if not frame.processed:
            continue
        labelled = False
        for face_id in faces:
            target = labels.target(frame.index, seconds, face_id)
            if target is None:
                continue
            labelled = True
            est = main if face_id is None else frame.face(face_id)
            samples.append(Sample(frame.index, seconds, face_id, target, None if est is None else est.class_id))
        if not labelled and frame.estimates:
            unlabelled += 1
    scored = [s for s in samples if s.prediction is not None]
    scores = score([s.target for s in scored], [s.prediction for s in scored])
    latencies = np.array([f.latency_ms for f in results.frames if f.processed and f.latency_ms is not None], float)
    return Evaluation(
        scores=scores, samples=samples, frames=len(results.frames),
        processed=sum(f.processed for f in results.frames),
        dropped=sum(not f.processed for f in results.frames),
        latencies_ms=latencies, unlabelled_with_faces=unlabelled, timeline=timeline, labels=labels,
        source=results.source, warnings=label_warnings(results, labels),
    )
