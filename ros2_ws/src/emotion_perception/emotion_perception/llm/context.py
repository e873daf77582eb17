"""Emotion context: per-person smoothing, hysteresis, memory, addressee choice, one sentence.

The LLM must hear how the people in front of the robot feel *now*, without the flicker of
per-frame estimates. State is kept per *subject*: the estimate's ``person_id`` when
re-identification gives one, else its ``face_id`` (``EmotionEstimate.subject_id``). Each subject
keeps an exponential moving average of its class (and scene-polarity) probabilities, weighted by
the time between estimates (time constant ``smoothing_s``), so irregular frame rates smooth the
same way. The *reported* class only changes when another class leads it by ``switch_margin`` for
``switch_hold_s``. A subject not seen for ``max_age_s`` is no longer visible.

Per-person memory: a subject with a person id is remembered for ``memory_s`` after it was last
seen (at most ``max_remembered`` people, least recently seen forgotten first), with a timeline of
the dominant reported emotion per ``history_interval_s``. When it comes back after being out of
view, its average starts afresh, and for ``back_note_s`` the sentence says so ({back}). Face-only
subjects (no person id) are forgotten as soon as they are out of view: a track id never returns.

All times come from the estimates' ``stamp_ns`` and the caller's ``now_ns`` (ROS time in the node),
so bag replay with simulated time behaves like a live camera.

Template fields (``str.format``), for ``template``, ``uncertain_template``, ``scene_template``,
``single_person``, ``several_people``, ``others_template`` (+ {people}), ``other_person`` and
``back_template`` (+ {absent_s} {earlier}):
  {who}         "The person in front of you", or ``several_people`` with several visible
  {emotion}     adjective: happy, sad, neutral, angry, surprised, disgusted, afraid
                (in ``other_person``: "uncertain" when that person's emotion is)
  {class_name}  canonical class name (happy ... fear)
  {confidence}  smoothed probability of the reported class, float in [0, 1]
  {polarity}    smoothed scene polarity: negative / neutral / positive / unknown
  {scene}       ``scene_template`` rendered, or "" when the polarity is unknown
  {count}       number of visible faces
  {face_id}     id of the addressed face's current track
  {person_id}   the addressed person's id ("" without re-identification)
  {person}      "Person 2" for person id ``person_2`` (any id ending in a number), the id itself
                otherwise; "someone" without a person id
  {position}    where the person is, from the camera's view: "in front of you" alone; "on the left",
                "in the middle", "on the right" among up to 3; "2nd from the left" among more; with
                faces on several cameras (``frame_id``) "on camera X" (+ ", on the left" among several there)
  {others}      ``others_template`` listing the other visible people (up to ``max_people`` in all,
                nearest first, told left to right), or "" when nobody else is described
  {back}        ``back_template`` for ``back_note_s`` after the addressee came back, else ""
  {valence} {arousal}  circumplex coordinates of the smoothed distribution, floats in [-1, 1]
``nobody_template`` gets no fields.
"""
from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..labels import CLASS_NAMES, NUM_CLASSES, POLARITIES, valence_arousal
from ..types import Box, EmotionEstimate

ADJECTIVES = {
    "happy": "happy",
    "sad": "sad",
    "neutral": "neutral",
    "angry": "angry",
    "surprise": "surprised",
    "disgust": "disgusted",
    "fear": "afraid",
}
UNCERTAIN = "uncertain"
ADDRESSEE_POLICIES = ("largest", "most_confident")
_TEMPLATE_FIELDS = dict(
    who="The person in front of you", emotion="happy", class_name="happy", confidence=0.5,
    polarity="positive", scene="", count=1, face_id="1", person_id="person_2", person="Person 2",
    position="in front of you", others="", back="", valence=0.0, arousal=0.0,
)
_EXTRA_FIELDS = {"others_template": dict(people="on the left, Person 1: happy"),
                 "back_template": dict(absent_s=40.0, earlier="sad")}
_TEMPLATES = ("template", "uncertain_template", "scene_template", "single_person", "several_people",
              "others_template", "other_person", "back_template")
_ORDINALS = ("1st", "2nd", "3rd")


def position_word(rank: int, count: int) -> str:
    """Where the ``rank``-th person from the left (0-based) of ``count`` is, from the camera's view."""
    if count == 1:
        return "in front of you"
    if count <= 3:
        return ("on the left", "in the middle", "on the right")[rank if rank == 0 or count == 3 else 2]
    return f"{_ORDINALS[rank] if rank < 3 else f'{rank + 1}th'} from the left"


def person_name(person_id: str) -> str:
    """How the sentence names a person: ``person_2`` -> "Person 2"; no id -> "someone"."""
    if not person_id:
        return "someone"
    number = re.search(r"(\d+)$", person_id)
    return f"Person {int(number.group(1))}" if number else f"Person {person_id}"


@dataclass(frozen=True)
class ContextConfig:
    """How the context is smoothed, chosen and worded (see the module docstring for fields)."""

    # Defaults chosen on the labelled dev set (docs/llm-context.md, benchmarks/context_tuning.py):
    # the engine already smooths each face (EMA 1 s), so a second average here only adds delay;
    # the margin alone keeps the sentence from flickering between close classes.
    smoothing_s: float = 0.0  # EMA time constant of the class probabilities (0: none)
    max_age_s: float = 2.0  # a face not seen for this long is out of view
    switch_margin: float = 0.15  # a new class must lead the reported one by this much ...
    switch_hold_s: float = 0.0  # ... for this long before the reported class changes
    min_confidence: float = 0.25  # below this (calibrated) probability the emotion is reported as uncertain
    addressee: str = "largest"  # largest | most_confident
    addressee_ratio: float = 1.2  # another face must be this much larger/more confident to take over
    max_people: int = 3  # people described in the sentence, the addressee included
    memory_s: float = 600.0  # a person (with a person id) is remembered this long after last seen
    max_remembered: int = 64  # people remembered at most (least recently seen forgotten first)
    history_interval_s: float = 10.0  # the per-person timeline keeps the dominant emotion per interval
    back_note_s: float = 20.0  # for this long after a person comes back, the sentence says so
    template: str = "{who} looks {emotion} (confidence {confidence:.2f}){scene}.{others}{back}"
    uncertain_template: str = "{who} is visible, but their emotion is uncertain{scene}.{others}{back}"
    nobody_template: str = "No one is visible."
    scene_template: str = "; the scene seems {polarity}"
    single_person: str = "The person in front of you"
    several_people: str = "The person you are talking to ({position}, one of {count} people)"
    others_template: str = " Also visible: {people}."
    other_person: str = "{position}, {person}: {emotion}"
    back_template: str = " {person} is back after {absent_s:.0f} s; earlier they looked {earlier}."

    def __post_init__(self) -> None:
        if self.addressee not in ADDRESSEE_POLICIES:
            raise ValueError(f"addressee policy {self.addressee!r} unknown; expected one of {ADDRESSEE_POLICIES}")
        for name in ("smoothing_s", "max_age_s", "switch_hold_s", "memory_s", "back_note_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_confidence <= 1 or self.switch_margin < 0 or self.addressee_ratio < 1:
            raise ValueError("need 0 <= min_confidence <= 1, switch_margin >= 0, addressee_ratio >= 1")
        if self.max_people < 1 or self.max_remembered < 1 or self.history_interval_s <= 0:
            raise ValueError("need max_people >= 1, max_remembered >= 1, history_interval_s > 0")
        for name in _TEMPLATES:
            fields = {**_TEMPLATE_FIELDS, **_EXTRA_FIELDS.get(name, {})}
            try:
                getattr(self, name).format(**fields)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is not a valid template ({e!r}); "
                    f"fields: {', '.join(fields)}"
                ) from None


@dataclass(frozen=True)
class PersonContext:
    """One person as the sentence describes them."""

    subject_id: str
    person_id: str
    face_id: str
    position: str
    state: str  # "uncertain" | "emotion"
    class_name: str
    confidence: float


@dataclass(frozen=True)
class EmotionContext:
    """What the LLM is told, and the numbers behind it (for logs, tests and other nodes)."""

    sentence: str
    state: str  # "nobody" | "uncertain" | "emotion" (of the addressee)
    count: int = 0
    face_id: str = ""
    class_name: str = ""
    confidence: float = 0.0
    polarity: str = "unknown"
    person_id: str = ""  # the addressee's person id ("" without re-identification)
    people: tuple[PersonContext, ...] = ()  # everyone the sentence describes, addressee first


@dataclass
class _SubjectState:
    probabilities: np.ndarray
    polarity: np.ndarray | None
    box: Box
    last_ns: int
    reported: int
    face_id: str
    person_id: str
    frame_id: str  # the camera; positions compare boxes of one camera only
    challenger: int = -1
    challenger_since_ns: int = 0
    # timeline: (interval start ns, dominant class, seconds seen) per finished interval
    history: deque = field(default_factory=lambda: deque(maxlen=64))
    interval_start_ns: int = 0
    interval_seconds: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES))
    back_ns: int = -1  # when it came back into view (-1: never left)
    absent_s: float = 0.0
    earlier: int = -1  # dominant class before it left


class EmotionContextTracker:
    """Thread-safe: the node feeds estimates from one callback and reads from the LLM worker."""

    def __init__(self, config: ContextConfig | None = None) -> None:
        self.config = config or ContextConfig()
        self._subjects: OrderedDict[str, _SubjectState] = OrderedDict()  # least recently seen first
        self._addressee: str | None = None
        self._lock = threading.Lock()

    def update(self, estimates: Iterable[EmotionEstimate], now_ns: int | None = None) -> None:
        """Fold a batch of estimates in. ``stamp_ns == 0`` (unstamped) means ``now_ns``."""
        with self._lock:
            for est in estimates:
                p = np.asarray(est.probabilities, dtype=np.float64)
                if p.shape != (NUM_CLASSES,) or not np.all(np.isfinite(p)) or p.sum() <= 0:
                    raise ValueError(f"face {est.face_id!r}: expected {NUM_CLASSES} finite probabilities, got {p!r}")
                p = p / p.sum()
                pol = est.polarity_probabilities
                pol = None if pol is None or float(np.sum(pol)) <= 0 else np.asarray(pol, np.float64) / float(np.sum(pol))
                stamp = est.stamp_ns or (now_ns or 0)
                self._fold(est, p, pol, stamp)

    def _fold(self, est: EmotionEstimate, p: np.ndarray, pol: np.ndarray | None, stamp: int) -> None:
        subject = str(est.subject_id)
        state = self._subjects.get(subject)
        if state is None or stamp < state.last_ns:  # new subject, or time went backwards (bag loop)
            self._subjects[subject] = _SubjectState(p, pol, est.box, stamp, int(np.argmax(p)), str(est.face_id),
                                                    str(est.person_id), est.frame_id, interval_start_ns=stamp)
            self._subjects.move_to_end(subject)
            return
        self._subjects.move_to_end(subject)
        gap = (stamp - state.last_ns) / 1e9
        if gap > self.config.max_age_s:  # back after being out of view: a fresh average, same memory
            self._close_interval(state)
            state.earlier, state.back_ns, state.absent_s = self._dominant(state), stamp, gap
            state.probabilities, state.polarity, state.reported, state.challenger = p, pol, int(np.argmax(p)), -1
            state.interval_start_ns = stamp
        else:
            tau = self.config.smoothing_s
            alpha = 1.0 if tau == 0 else 1.0 - math.exp(-gap / tau)
            state.probabilities = (1 - alpha) * state.probabilities + alpha * p
            if pol is not None:
                state.polarity = pol if state.polarity is None else (1 - alpha) * state.polarity + alpha * pol
            state.interval_seconds[state.reported] += gap
            self._hysteresis(state, stamp)
            if stamp - state.interval_start_ns >= self.config.history_interval_s * 1e9:
                self._close_interval(state)
                state.interval_start_ns = stamp
        state.box, state.last_ns, state.face_id, state.frame_id = est.box, stamp, str(est.face_id), est.frame_id

    @staticmethod
    def _close_interval(state: _SubjectState) -> None:
        seen = float(state.interval_seconds.sum())
        if seen > 0:
            state.history.append((state.interval_start_ns, int(np.argmax(state.interval_seconds)), seen))
        state.interval_seconds = np.zeros(NUM_CLASSES)

    @staticmethod
    def _dominant(state: _SubjectState) -> int:
        """The class reported for the most seconds over the remembered timeline (-1: none)."""
        seconds = np.zeros(NUM_CLASSES)
        for _, cls, seen in state.history:
            seconds[cls] += seen
        return int(np.argmax(seconds)) if seconds.sum() > 0 else -1

    def _hysteresis(self, state: _SubjectState, stamp: int) -> None:
        probs = state.probabilities
        best = int(np.argmax(probs))
        if best == state.reported or probs[best] - probs[state.reported] < self.config.switch_margin:
            state.challenger = -1
            return
        if best != state.challenger:
            state.challenger, state.challenger_since_ns = best, stamp
        if (stamp - state.challenger_since_ns) / 1e9 >= self.config.switch_hold_s:
            state.reported, state.challenger = best, -1

    def _expire(self, now_ns: int) -> list[str]:
        """Forget what is past memory; the visible subjects (seen within ``max_age_s``)."""
        cfg = self.config
        visible_after = now_ns - int(cfg.max_age_s * 1e9)
        remember_after = now_ns - int(max(cfg.memory_s, cfg.max_age_s) * 1e9)
        for subject in [k for k, s in self._subjects.items()
                        if s.last_ns < (remember_after if s.person_id else visible_after)]:
            del self._subjects[subject]
        while len(self._subjects) > cfg.max_remembered:
            self._subjects.popitem(last=False)
        return [k for k, s in self._subjects.items() if s.last_ns >= visible_after]

    def _choose(self, visible: list[str]) -> str:
        """Addressee by policy; the current one keeps the floor unless beaten by ``addressee_ratio``."""
        subjects = self._subjects
        if self.config.addressee == "largest":
            score = {k: subjects[k].box.area for k in visible}
        else:
            score = {k: float(subjects[k].probabilities[subjects[k].reported]) for k in visible}
        best = max(score, key=lambda k: (score[k], k))
        current = self._addressee
        if current in score and score[best] <= score[current] * self.config.addressee_ratio:
            return current
        return best

    def context(self, now_ns: int) -> EmotionContext:
        """The context at ``now_ns``: expire stale subjects, pick the addressee, word it."""
        cfg = self.config
        with self._lock:
            visible = self._expire(now_ns)
            if not visible:
                self._addressee = None
                return EmotionContext(cfg.nobody_template, "nobody")
            self._addressee = self._choose(visible)
            state = self._subjects[self._addressee]
            count = len(visible)
            place = self._positions(visible)
            nearest = sorted((k for k in visible if k != self._addressee),
                             key=lambda k: (-self._subjects[k].box.area, k))[: cfg.max_people - 1]
            described = [self._describe(self._addressee, place)]
            described += sorted((self._describe(k, place) for k in nearest), key=lambda p: place[p.subject_id])
            me = described[0]
            probs = state.probabilities.astype(np.float32)
            polarity = "unknown" if state.polarity is None else POLARITIES[int(np.argmax(state.polarity))]
            fields = dict(
                emotion=ADJECTIVES[me.class_name], class_name=me.class_name, confidence=me.confidence,
                polarity=polarity, count=count, face_id=state.face_id, person_id=state.person_id,
                person=person_name(state.person_id), position=me.position, others="", back="",
            )
            fields["valence"], fields["arousal"] = valence_arousal(probs)
            fields["who"] = (cfg.single_person if count == 1 else cfg.several_people).format(**fields, who="", scene="")
            fields["scene"] = "" if state.polarity is None else cfg.scene_template.format(**fields, scene="")
            if len(described) > 1:
                people = "; ".join(cfg.other_person.format(**{
                    **fields, "person": person_name(p.person_id), "position": p.position, "face_id": p.face_id,
                    "person_id": p.person_id, "class_name": p.class_name, "confidence": p.confidence,
                    "emotion": UNCERTAIN if p.state == UNCERTAIN else ADJECTIVES[p.class_name],
                }) for p in described[1:])
                fields["others"] = cfg.others_template.format(**fields, people=people)
            if state.person_id and state.back_ns >= 0 and state.earlier >= 0 \
                    and now_ns - state.back_ns <= cfg.back_note_s * 1e9:
                fields["back"] = cfg.back_template.format(**fields, absent_s=state.absent_s,
                                                          earlier=ADJECTIVES[CLASS_NAMES[state.earlier]])
            sentence = (cfg.uncertain_template if me.state == UNCERTAIN else cfg.template).format(**fields)
            return EmotionContext(sentence, me.state, count, state.face_id, me.class_name, me.confidence, polarity,
                                  state.person_id, tuple(described))

    def _positions(self, visible: list[str]) -> dict[str, tuple[str, int, str]]:
        """subject -> (camera, rank from the left, position words). Boxes of different cameras
        (``frame_id``) are not compared: with several, the camera is named."""
        cameras: dict[str, list[str]] = {}
        for k in visible:
            cameras.setdefault(self._subjects[k].frame_id, []).append(k)
        out = {}
        for camera, subjects in sorted(cameras.items()):
            subjects.sort(key=lambda k: (self._subjects[k].box.center[0], k))
            for rank, k in enumerate(subjects):
                if len(cameras) == 1:
                    words = position_word(rank, len(subjects))
                else:
                    words = f"on camera {camera or '?'}" + ("" if len(subjects) == 1 else
                                                            f", {position_word(rank, len(subjects))}")
                out[k] = (camera, rank, words)
        return out

    def _describe(self, subject: str, place: dict[str, tuple[str, int, str]]) -> PersonContext:
        state = self._subjects[subject]
        name = CLASS_NAMES[state.reported]
        confidence = float(np.float32(state.probabilities[state.reported]))
        return PersonContext(subject, state.person_id, state.face_id, place[subject][2],
                             UNCERTAIN if confidence < self.config.min_confidence else "emotion", name, confidence)

    def timeline(self, subject_id: str) -> list[tuple[int, str, float]]:
        """A remembered subject's finished intervals: (start ns, dominant class name, seconds seen)."""
        with self._lock:
            state = self._subjects.get(subject_id)
            return [] if state is None else [(t, CLASS_NAMES[c], seen) for t, c, seen in state.history]

    def forget(self, subject_id: str | None = None) -> int:
        """Forget one person (or face), or everyone (privacy: nothing is kept beyond this object);
        how many were forgotten."""
        with self._lock:
            if subject_id is None:
                n = len(self._subjects)
                self._subjects.clear()
                self._addressee = None
                return n
            return int(self._subjects.pop(subject_id, None) is not None)

    def clear(self) -> None:
        self.forget()
