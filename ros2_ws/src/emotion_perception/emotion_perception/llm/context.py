"""Emotion context: per-face smoothing, hysteresis, expiry, addressee choice, one sentence.

The LLM must hear how the person it talks to feels *now*, without the flicker of per-frame
estimates. Each face keeps an exponential moving average of its class (and scene-polarity)
probabilities, weighted by the time between estimates (time constant ``smoothing_s``), so irregular
frame rates smooth the same way. The *reported* class of a face only changes when another class
leads it by ``switch_margin`` for ``switch_hold_s``. Faces not seen for ``max_age_s`` expire.

All times come from the estimates' ``stamp_ns`` and the caller's ``now_ns`` (ROS time in the node),
so bag replay with simulated time behaves like a live camera.

Template fields (``str.format``), for ``template``, ``uncertain_template`` and ``scene_template``:
  {who}         "The person in front of you", or "The nearest of 3 people" (policy-dependent word)
  {emotion}     adjective: happy, sad, neutral, angry, surprised, disgusted, afraid
  {class_name}  canonical class name (happy ... fear)
  {confidence}  smoothed probability of the reported class, float in [0, 1]
  {polarity}    smoothed scene polarity: negative / neutral / positive / unknown
  {scene}       ``scene_template`` rendered, or "" when the polarity is unknown
  {count}       number of visible (unexpired) faces
  {face_id}     id of the addressed face
  {valence} {arousal}  circumplex coordinates of the smoothed distribution, floats in [-1, 1]
``nobody_template`` gets no fields.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
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
ADDRESSEE_POLICIES = ("largest", "most_confident")
_TEMPLATE_FIELDS = dict(
    who="The person in front of you", emotion="happy", class_name="happy", confidence=0.5,
    polarity="positive", scene="", count=1, face_id="1", valence=0.0, arousal=0.0,
)


@dataclass(frozen=True)
class ContextConfig:
    """How the context is smoothed, chosen and worded (see the module docstring for fields)."""

    smoothing_s: float = 1.0  # EMA time constant of the class probabilities
    max_age_s: float = 2.0  # a face not seen for this long is gone
    switch_margin: float = 0.15  # a new class must lead the reported one by this much ...
    switch_hold_s: float = 0.5  # ... for this long before the reported class changes
    min_confidence: float = 0.4  # below this the emotion is reported as uncertain
    addressee: str = "largest"  # largest | most_confident
    addressee_ratio: float = 1.2  # another face must be this much larger/more confident to take over
    template: str = "{who} looks {emotion} (confidence {confidence:.2f}){scene}."
    uncertain_template: str = "{who} is visible, but their emotion is uncertain{scene}."
    nobody_template: str = "No one is visible."
    scene_template: str = "; the scene seems {polarity}"
    single_person: str = "The person in front of you"
    several_people: str = "The nearest of {count} people"

    def __post_init__(self) -> None:
        if self.addressee not in ADDRESSEE_POLICIES:
            raise ValueError(f"addressee policy {self.addressee!r} unknown; expected one of {ADDRESSEE_POLICIES}")
        for name in ("smoothing_s", "max_age_s", "switch_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_confidence <= 1 or self.switch_margin < 0 or self.addressee_ratio < 1:
            raise ValueError("need 0 <= min_confidence <= 1, switch_margin >= 0, addressee_ratio >= 1")
        for name in ("template", "uncertain_template", "scene_template", "single_person", "several_people"):
            try:
                getattr(self, name).format(**_TEMPLATE_FIELDS)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is not a valid template ({e!r}); "
                    f"fields: {', '.join(_TEMPLATE_FIELDS)}"
                ) from None


@dataclass(frozen=True)
class EmotionContext:
    """What the LLM is told, and the numbers behind it (for logs, tests and other nodes)."""

    sentence: str
    state: str  # "nobody" | "uncertain" | "emotion"
    count: int = 0
    face_id: str = ""
    class_name: str = ""
    confidence: float = 0.0
    polarity: str = "unknown"


@dataclass
class _FaceState:
    probabilities: np.ndarray
    polarity: np.ndarray | None
    box: Box
    last_ns: int
    reported: int
    challenger: int = -1
    challenger_since_ns: int = 0


class EmotionContextTracker:
    """Thread-safe: the node feeds estimates from one callback and reads from the LLM worker."""

    def __init__(self, config: ContextConfig | None = None) -> None:
        self.config = config or ContextConfig()
        self._faces: dict[str, _FaceState] = {}
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
                self._fold(str(est.face_id), p, pol, est.box, stamp)

    def _fold(self, face_id: str, p: np.ndarray, pol: np.ndarray | None, box: Box, stamp: int) -> None:
        face = self._faces.get(face_id)
        if face is None or stamp < face.last_ns:  # new face, or time went backwards (bag loop)
            self._faces[face_id] = _FaceState(p, pol, box, stamp, int(np.argmax(p)))
            return
        dt = (stamp - face.last_ns) / 1e9
        tau = self.config.smoothing_s
        alpha = 1.0 if tau == 0 else 1.0 - math.exp(-dt / tau)
        face.probabilities = (1 - alpha) * face.probabilities + alpha * p
        if pol is not None:
            face.polarity = pol if face.polarity is None else (1 - alpha) * face.polarity + alpha * pol
        face.box, face.last_ns = box, stamp
        self._hysteresis(face, stamp)

    def _hysteresis(self, face: _FaceState, stamp: int) -> None:
        probs = face.probabilities
        best = int(np.argmax(probs))
        if best == face.reported or probs[best] - probs[face.reported] < self.config.switch_margin:
            face.challenger = -1
            return
        if best != face.challenger:
            face.challenger, face.challenger_since_ns = best, stamp
        if (stamp - face.challenger_since_ns) / 1e9 >= self.config.switch_hold_s:
            face.reported, face.challenger = best, -1

    def _expire(self, now_ns: int) -> None:
        limit = now_ns - int(self.config.max_age_s * 1e9)
        for face_id in [f for f, s in self._faces.items() if s.last_ns < limit]:
            del self._faces[face_id]

    def _choose(self) -> str:
        """Addressee by policy; the current one keeps the floor unless beaten by ``addressee_ratio``."""
        if self.config.addressee == "largest":
            score = {f: s.box.area for f, s in self._faces.items()}
        else:
            score = {f: float(s.probabilities[s.reported]) for f, s in self._faces.items()}
        best = max(score, key=lambda f: (score[f], f))
        current = self._addressee
        if current in score and score[best] <= score[current] * self.config.addressee_ratio:
            return current
        return best

    def context(self, now_ns: int) -> EmotionContext:
        """The context at ``now_ns``: expire stale faces, pick the addressee, word it."""
        cfg = self.config
        with self._lock:
            self._expire(now_ns)
            if not self._faces:
                self._addressee = None
                return EmotionContext(cfg.nobody_template, "nobody")
            self._addressee = self._choose()
            face = self._faces[self._addressee]
            count = len(self._faces)
            probs = face.probabilities.astype(np.float32)
            polarity = "unknown" if face.polarity is None else POLARITIES[int(np.argmax(face.polarity))]
            name = CLASS_NAMES[face.reported]
            confidence = float(probs[face.reported])
            fields = dict(
                emotion=ADJECTIVES[name], class_name=name, confidence=confidence, polarity=polarity,
                count=count, face_id=self._addressee,
            )
            fields["valence"], fields["arousal"] = valence_arousal(probs)
            fields["who"] = (cfg.single_person if count == 1 else cfg.several_people).format(**fields, who="", scene="")
            fields["scene"] = "" if face.polarity is None else cfg.scene_template.format(**fields, scene="")
            uncertain = confidence < cfg.min_confidence
            sentence = (cfg.uncertain_template if uncertain else cfg.template).format(**fields)
            return EmotionContext(
                sentence, "uncertain" if uncertain else "emotion", count, self._addressee, name, confidence, polarity
            )

    def clear(self) -> None:
        with self._lock:
            self._faces.clear()
            self._addressee = None
