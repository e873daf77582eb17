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
        }


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
        source=results.source,
    )
