"""The data that flows through the core: frames in, per-face emotion estimates out."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .images import check_rgb
from .labels import CLASS_NAMES, POLARITIES, valence_arousal


@dataclass(frozen=True)
class Frame:
    """One camera image. ``stamp_ns`` is the capture time (ROS header stamp) in nanoseconds."""

    image: np.ndarray  # HxWx3 uint8 RGB
    stamp_ns: int = 0
    frame_id: str = ""
    source: str = ""  # camera / topic name; keeps tracks of several cameras apart

    def __post_init__(self) -> None:
        check_rgb(self.image)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels: top-left corner, width and height."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clipped(self, width: int, height: int) -> "Box":
        x0, y0 = min(max(self.x, 0.0), width), min(max(self.y, 0.0), height)
        x1, y1 = min(max(self.x + self.w, 0.0), width), min(max(self.y + self.h, 0.0), height)
        return Box(x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float


@dataclass
class EmotionEstimate:
    """The emotion of one tracked face, from a window of its frames (canonical class order)."""

    face_id: str
    box: Box
    probabilities: np.ndarray  # (7,) float32, sums to 1
    frames_used: int
    model_id: str
    stamp_ns: int = 0
    frame_id: str = ""
    source: str = ""
    polarity_probabilities: np.ndarray | None = None  # (3,) negative/neutral/positive, or None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The person this face belongs to, kept across absences by re-identification; "" while
    # identity is off or not yet known, and consumers then key by face_id.
    person_id: str = ""

    @property
    def subject_id(self) -> str:
        """Who this estimate is about: the person when known, else the face track."""
        return self.person_id or self.face_id

    @property
    def class_id(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.class_id]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.class_id])

    @property
    def valence_arousal(self) -> tuple[float, float]:
        return valence_arousal(self.probabilities)

    @property
    def polarity(self) -> int | None:
        if self.polarity_probabilities is None:
            return None
        return int(np.argmax(self.polarity_probabilities))

    @property
    def polarity_name(self) -> str | None:
        p = self.polarity
        return None if p is None else POLARITIES[p]
