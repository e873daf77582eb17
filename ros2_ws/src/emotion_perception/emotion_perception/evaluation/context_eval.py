"""What the LLM hears: a run's estimates replayed through the bridge's own context tracker and the
context scored against the labels.

The replay feeds every frame's estimates to ``EmotionContextTracker`` (the LLM bridge's class, with
the node's configuration unless overridden) and reads the context at the frame's stamp, as the
node would when a request arrives then. Per labelled face (a *sample*) the context is right when
the sentence names the labelled emotion for that person: the person the sentence describes is the
tracker subject (person id, else face id) of the estimate the per-frame scorer matched to that
label, or the last one matched while the face is missed. "uncertain", and a labelled person the
sentence does not describe ("nobody", out of view, beyond ``max_people``), count as wrong.

Numbers (``ContextScore.to_dict``):
- ``context_accuracy``: right samples / samples; ``uncertain_share``: uncertain samples / samples;
- ``count_accuracy``: labelled frames whose context counts as many visible people as are labelled;
- ``context_delay_s``: per labelled *change* (a person's label differs from their previous labelled
  frame, or, in videos, the first label after an unlabelled start: the expression's onset), the
  seconds until the sentence first names the new label, while it lasts; median and p90 over the
  changes, a change never named counted as infinitely late (so a p90 of null means more than 10 %
  were never named; ``never_named`` counts them);
- ``context_wrong_s``: seconds (frame to next frame) during which the sentence names a wrong emotion
  for a labelled person; ``context_wrong_episodes``: how often such a stretch began;
  ``labelled_s``: seconds of labelled samples, to turn these into rates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from ..labels import CLASS_NAMES
from ..llm.context import UNCERTAIN, ContextConfig, EmotionContextTracker
from ..llm.params import DEFAULTS, context_config
from ..types import EmotionEstimate
from .plots import TIMELINE_SIZE, figure, format_value

NOBODY = -2  # timeline codes besides class ids
UNSURE = -1
CONTEXT_KEYS = ("context_accuracy", "count_accuracy", "context_delay_s", "context_wrong_s", "uncertain_share")


@dataclass
class ReplayFrame:
    """One frame as the tracker sees it, with what the labels say about it."""

    stamp_ns: int
    estimates: list[EmotionEstimate]
    labels: dict[str, int] = field(default_factory=dict)  # labelled person -> class id
    subjects: dict[str, str] = field(default_factory=dict)  # labelled person -> subject id matched this frame
    index: int = 0  # position in the recording (onsets: a first label at index > 0)


@dataclass
class ContextScore:
    samples: int = 0
    correct: int = 0
    uncertain: int = 0
    count_frames: int = 0
    count_correct: int = 0
    wrong_s: float = 0.0
    wrong_episodes: int = 0
    labelled_s: float = 0.0
    delays: list[float] = field(default_factory=list)  # math.inf: never named
    changes: list[tuple[str, float]] = field(default_factory=list)  # (person, seconds) of each delay
    # per labelled sample: (seconds since the first frame, person, label, context code)
    timeline: list[tuple[float, str, int, int]] = field(default_factory=list)

    def add(self, other: "ContextScore") -> None:
        for f in ("samples", "correct", "uncertain", "count_frames", "count_correct", "wrong_s", "wrong_episodes",
                  "labelled_s"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.delays += other.delays
        self.changes += other.changes

    def to_dict(self) -> dict:
        delays = np.array(self.delays, float)
        finite = delays[np.isfinite(delays)]

        def pct(q: float):
            if not delays.size:
                return None
            value = float(np.percentile(delays, q, method="higher"))
            return value if math.isfinite(value) else None

        return {
            "context_accuracy": self.correct / self.samples if self.samples else None,
            "count_accuracy": self.count_correct / self.count_frames if self.count_frames else None,
            "context_delay_s": {"median": pct(50), "p90": pct(90), "changes": int(delays.size),
                                "never_named": int(delays.size - finite.size)},
            "context_wrong_s": self.wrong_s,
            "context_wrong_episodes": self.wrong_episodes,
            "uncertain_share": self.uncertain / self.samples if self.samples else None,
            "context_samples": self.samples,
            "labelled_s": self.labelled_s,
        }


def _frame_seconds(frames: list[ReplayFrame]) -> list[float]:
    """How long each frame stands (to the next frame; the last one: the median step)."""
    stamps = np.array([f.stamp_ns for f in frames], np.int64)
    steps = np.diff(stamps) / 1e9
    last = float(np.median(steps)) if steps.size else 0.0
    return [*(max(float(s), 0.0) for s in steps), last]


def replay(frames: list[ReplayFrame], config: ContextConfig, onsets: bool = True) -> ContextScore:
    """Score the context of one recording (see the module docstring); ``onsets``: a person's first
    label after an unlabelled start counts as a change (videos), not for a photo's still frames."""
    tracker = EmotionContextTracker(config)
    score = ContextScore()
    if not frames:
        return score
    t0 = frames[0].stamp_ns
    subject: dict[str, str] = {}
    previous: dict[str, int] = {}  # person -> label of their previous labelled frame
    pending: dict[str, tuple[int, float]] = {}  # person -> (class, since s) of a change not yet named
    wrong_before: dict[str, bool] = {}
    for frame, seconds in zip(frames, _frame_seconds(frames)):
        tracker.update(frame.estimates, frame.stamp_ns)
        ctx = tracker.context(frame.stamp_ns)
        if not frame.labels:
            continue
        t = (frame.stamp_ns - t0) / 1e9
        said = {p.subject_id: p for p in ctx.people}
        score.count_frames += 1
        score.count_correct += ctx.count == len(frame.labels)
        for person, label in frame.labels.items():
            subject[person] = frame.subjects.get(person, subject.get(person, ""))
            told = said.get(subject[person]) if subject[person] else None
            code = NOBODY if told is None else UNSURE if told.state == UNCERTAIN else CLASS_NAMES.index(told.class_name)
            score.samples += 1
            score.labelled_s += seconds
            score.correct += code == label
            score.uncertain += code == UNSURE
            wrong = code >= 0 and code != label
            score.wrong_s += seconds if wrong else 0.0
            score.wrong_episodes += wrong and not wrong_before.get(person, False)
            wrong_before[person] = wrong
            score.timeline.append((t, person, label, code))
            if person in pending and pending[person][0] != label:  # the label moved on before being named
                score.delays.append(math.inf)
                score.changes.append((person, pending.pop(person)[1]))
            changed = previous[person] != label if person in previous else onsets and frame.index > 0
            previous[person] = label
            if changed:
                pending[person] = (label, t)
            if person in pending and code == label:
                since = pending.pop(person)[1]
                score.delays.append(t - since)
                score.changes.append((person, since))
    score.delays += [math.inf] * len(pending)
    score.changes += [(person, since) for person, (_, since) in pending.items()]
    return score


def replay_results(results, labels, config: ContextConfig) -> ContextScore:
    """``eval``: a run's results (``results.Results``) against a labels file (``labels_file.Labels``):
    the main face (largest box) for ranges without face_id, the named track otherwise."""
    frames = []
    for frame in results.frames:
        replayed = ReplayFrame(frame.stamp_ns, frame.estimates if frame.processed else [], index=frame.index)
        if frame.processed:
            main = frame.main_face()
            for face_id in labels.face_ids:
                target = labels.target(frame.index, results.seconds(frame), face_id)
                if target is None:
                    continue
                person = "main face" if face_id is None else face_id
                replayed.labels[person] = target
                est = main if face_id is None else frame.face(face_id)
                if est is not None:
                    replayed.subjects[person] = str(est.subject_id)
        frames.append(replayed)
    return replay(frames, config)


def load_context_config(path: str | Path | None = None, overrides: list[str] = ()) -> ContextConfig:
    """The node's context configuration: ``config/llm_bridge.yaml``-style ROS parameters file (any
    node section's ``context:`` block; missing names take the defaults), then ``name=value``
    overrides (``smoothing_s=0.5``), each converted to its default's type."""
    values: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read LLM bridge parameters {path}: {exc}") from None
        for section in data.values() if isinstance(data, dict) else ():
            block = (section or {}).get("ros__parameters", {}).get("context", {}) if isinstance(section, dict) else {}
            values.update({f"context.{k}": v for k, v in (block or {}).items()})
    names = [f.name for f in fields(ContextConfig)]
    for pair in overrides:
        name, sep, text = (s.strip() for s in pair.partition("="))
        if not sep or name not in names:
            raise ValueError(f"--context-set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(names)}")
        kind = type(DEFAULTS[f"context.{name}"])
        try:
            values[f"context.{name}"] = kind(text)
        except ValueError:
            raise ValueError(f"--context-set {pair!r}: {name} takes a {kind.__name__}") from None
    unknown = sorted(k for k in values if k not in DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown context parameters: {', '.join(unknown)}")
    return context_config(values)


def plot_context_timeline(score: ContextScore, path: Path, title: str) -> Path:
    """The context's class per labelled sample (dots) over the label (band), one row per class plus
    "uncertain" and "nobody"; several labelled people get one colour each."""

    fig = figure(TIMELINE_SIZE)
    ax = fig.add_subplot()
    people = sorted({p for _, p, _, _ in score.timeline})
    for k, person in enumerate(people):
        rows = [(t, label, code) for t, p, label, code in score.timeline if p == person]
        t, label, code = (np.array(c, float) for c in zip(*rows))
        colour = f"C{k}"
        ax.scatter(t, label, marker="s", s=40, alpha=0.25, color=colour, label=f"label ({person})")
        ax.scatter(t, code, s=8, color=colour, label=f"context ({person})", zorder=3)
    ax.set_yticks(range(NOBODY, len(CLASS_NAMES)), labels=["nobody", "uncertain", *CLASS_NAMES])
    ax.set_ylim(NOBODY - 0.6, len(CLASS_NAMES) - 0.4)
    ax.set_xlabel("time since first frame (s)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    ax.set_title(title)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.13)
    fig.savefig(path, format="png")
    return Path(path)


def summary_rows(data: dict) -> list[tuple[str, str]]:
    """Report rows for the context keys of one ``to_dict``."""

    delay = data["context_delay_s"]
    return [
        ("context accuracy (the sentence names the labelled emotion)", format_value(data["context_accuracy"], True)),
        ("uncertain share of labelled faces", format_value(data["uncertain_share"], True)),
        ("head-count accuracy (labelled frames)", format_value(data["count_accuracy"], True)),
        ("delay from a labelled change to the sentence naming it: median / p90 (s)",
         f"{format_value(delay['median'])} / {format_value(delay['p90'])} ({delay['changes']} changes, "
         f"{delay['never_named']} never named)"),
        ("seconds naming a wrong emotion (episodes)",
         f"{data['context_wrong_s']:.1f} of {data['labelled_s']:.1f} s ({data['context_wrong_episodes']})"),
    ]


def item_row(item: dict) -> tuple:
    """One row of the per-item table: context accuracy beside the per-frame WAR of the same labels."""

    delay = item["context_delay_s"]
    war = (item.get("all_labels") or {}).get("war")
    return (item["name"], format_value(item["context_accuracy"], True), format_value(war, True),
            format_value(item["uncertain_share"], True), format_value(item["count_accuracy"], True),
            f"{format_value(delay['median'])} / {format_value(delay['p90'])} ({delay['changes']})",
            f"{item['context_wrong_s']:.1f} ({item['context_wrong_episodes']})")
