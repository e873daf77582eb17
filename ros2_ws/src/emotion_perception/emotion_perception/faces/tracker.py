"""Give detected faces ids that follow a person while they stay in view, and when they come back.

The engine keeps a window of per-frame features per face and the LLM bridge keys conversation
memory on the id, so an id switch throws both away. Matching therefore tolerates what cameras
and detectors do to faces:

- missed detections (a head turn, a hand in front): a track keeps its id for ``patience_s``
  seconds of camera time without a detection, whatever the frame rate;
- motion: each track predicts its box from its velocity (pixels per second, capped at
  ``MAX_PREDICT_S`` of extrapolation) and matches on overlap with the prediction first, then on
  centre distance (within ``max_jump`` box sides, growing to twice that while the face is lost)
  when fast motion leaves no overlap; greedy, best pairs first, so crossing faces keep their ids;
- leaving and coming back: an expired track is remembered for ``memory_s`` seconds (its id, last
  box and size); a new face whose centre is within ``REVIVE_JUMP`` box sides of a remembered
  face of similar size (factor 2) gets that id back instead of a new one. The engine's window for
  it starts afresh, since ``expired`` told it to drop the old one.

Time comes from the frames' stamps (seconds); without stamps (``now`` None or not increasing)
each update counts as 1 / ``nominal_fps`` seconds. Ids are never given to two faces at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..types import Box, Detection

MAX_PREDICT_S = 0.5  # extrapolate a lost face's motion at most this long
REVIVE_JUMP = 1.5  # box sides between a remembered face and a new one to give its id back


@dataclass(frozen=True)
class Track:
    """A snapshot of one tracked face. ``missed`` = updates since it was last detected."""

    track_id: str
    box: Box
    score: float
    hits: int
    missed: int


@dataclass(frozen=True)
class TrackerUpdate:
    visible: list[Track]  # tracks matched in this frame, oldest track first
    expired: list[str]  # ids whose face has been gone for more than patience_s


@dataclass
class _State:
    number: int
    track_id: str
    box: Box
    score: float
    last_seen: float  # seconds
    hits: int = 1
    missed: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion, pixels per second

    def predicted(self, now: float) -> Box:
        """Where the face should be now if it kept moving as before."""
        dt = min(max(now - self.last_seen, 0.0), MAX_PREDICT_S)
        return Box(self.box.x + self.velocity[0] * dt, self.box.y + self.velocity[1] * dt, self.box.w, self.box.h)

    def snapshot(self) -> Track:
        return Track(self.track_id, self.box, self.score, self.hits, self.missed)


def _centre_distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = a.center, b.center
    return math.hypot(ax - bx, ay - by)


def _similar_size(a: Box, b: Box) -> bool:
    return 0.5 <= a.area / max(b.area, 1e-9) <= 2.0


class FaceTracker:
    """IoU + motion tracker with patience and memory in seconds.

    ``iou_threshold``: least overlap of a detection with a track's predicted box to match it.
    ``patience_s``: how long a track may go undetected and keep its id (and the engine its window).
    ``memory_s``: how long after that an expired face can still get its id back (0: never).
    ``max_jump``: centre-distance fallback, in box sides of the prediction.
    """

    def __init__(self, iou_threshold: float = 0.3, patience_s: float = 1.0, id_prefix: str = "",
                 max_jump: float = 1.0, memory_s: float = 3.0, nominal_fps: float = 30.0):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if patience_s < 0 or memory_s < 0 or max_jump < 0 or nominal_fps <= 0:
            raise ValueError("patience_s, memory_s and max_jump must be >= 0 and nominal_fps > 0, got "
                             f"{patience_s}, {memory_s}, {max_jump}, {nominal_fps}")
        self.iou_threshold = float(iou_threshold)
        self.patience_s = float(patience_s)
        self.memory_s = float(memory_s)
        self.id_prefix = id_prefix
        self.max_jump = float(max_jump)
        self.frame_s = 1.0 / nominal_fps
        self._tracks: list[_State] = []
        self._lost: list[_State] = []  # expired, remembered for memory_s
        self._created = 0
        self._now: float | None = None

    @property
    def tracks(self) -> list[Track]:
        """All live tracks, including those missed in recent frames."""
        return [t.snapshot() for t in self._tracks]

    @property
    def now(self) -> float:
        """The time of the last update, seconds (the frame stamp, or counted frames)."""
        return 0.0 if self._now is None else self._now

    def next_time(self, now: float | None) -> float:
        """The time ``update(..., now)`` will give the next frame, seconds (nothing changes)."""
        if now is None or not math.isfinite(now):
            return 0.0 if self._now is None else self._now + self.frame_s
        if self._now is not None and now <= self._now:  # repeated or backwards stamps: count the frame anyway
            return self._now + self.frame_s
        return now

    def predictions(self, now: float) -> list[tuple[str, Box]]:
        """(id, box) of where each face found in the last update should be at ``now`` (seconds),
        oldest track first. Faces missed since are left out: only a whole-frame search looks for them."""
        return [(t.track_id, t.predicted(now)) for t in sorted(self._tracks, key=lambda t: t.number) if t.missed == 0]

    def update(self, detections: list[Detection], now: float | None = None) -> TrackerUpdate:
        """Match this frame's detections (``now``: its stamp in seconds) to the tracks."""
        now = self._now = self.next_time(now)
        predictions = [t.predicted(now) for t in self._tracks]
        free_tracks = set(range(len(self._tracks)))
        free_dets = set(range(len(detections)))
        matches: list[tuple[int, int]] = []

        def take(pairs: list[tuple[float, int, int]]) -> None:
            for _, ti, di in sorted(pairs):
                if ti in free_tracks and di in free_dets:
                    matches.append((ti, di))
                    free_tracks.discard(ti)
                    free_dets.discard(di)

        take([
            (-iou, ti, di)
            for ti, pred in enumerate(predictions)
            for di, det in enumerate(detections)
            if (iou := pred.iou(det.box)) >= self.iou_threshold
        ])
        take([
            (dist, ti, di)
            for ti in free_tracks
            for di in free_dets
            if (dist := _centre_distance(predictions[ti], detections[di].box)) <= self._gate(self._tracks[ti], now)
            and _similar_size(detections[di].box, predictions[ti])
        ])

        for ti, di in matches:
            self._refresh(self._tracks[ti], detections[di], now)
        expired = []
        for ti in sorted(free_tracks):
            state = self._tracks[ti]
            state.missed += 1
            if now - state.last_seen > self.patience_s:
                expired.append(state.track_id)
                self._lost.append(state)
        gone = set(expired)
        self._tracks = [t for t in self._tracks if t.track_id not in gone]
        self._lost = [t for t in self._lost if now - t.last_seen <= self.patience_s + self.memory_s]
        for det in self._revive([detections[i] for i in sorted(free_dets)], now):
            self._tracks.append(self._new(det, now))

        visible = [t.snapshot() for t in sorted(self._tracks, key=lambda t: t.number) if t.missed == 0]
        return TrackerUpdate(visible=visible, expired=expired)

    def _gate(self, state: _State, now: float) -> float:
        """Centre-distance gate: ``max_jump`` sides, widening to twice that while the face is lost."""
        lost_for = now - state.last_seen - self.frame_s
        widen = 1.0 + min(max(lost_for, 0.0) / max(self.patience_s, 1e-9), 1.0)
        return self.max_jump * widen * max(state.box.w, state.box.h)

    def _revive(self, detections: list[Detection], now: float) -> list[Detection]:
        """Give remembered ids back to new faces where those faces were; returns the rest."""
        pairs = sorted(
            (_centre_distance(lost.box, det.box) / max(lost.box.w, lost.box.h, 1e-9), li, di)
            for li, lost in enumerate(self._lost)
            for di, det in enumerate(detections)
            if _similar_size(det.box, lost.box)
        )
        used_lost, used_dets = set(), set()
        for ratio, li, di in pairs:
            if ratio > REVIVE_JUMP or li in used_lost or di in used_dets:
                continue
            used_lost.add(li)
            used_dets.add(di)
            lost, det = self._lost[li], detections[di]
            self._tracks.append(_State(lost.number, lost.track_id, det.box, det.score, now))
        self._lost = [t for i, t in enumerate(self._lost) if i not in used_lost]
        return [d for i, d in enumerate(detections) if i not in used_dets]

    def _refresh(self, state: _State, det: Detection, now: float) -> None:
        (ox, oy), (nx, ny) = state.box.center, det.box.center
        dt = max(now - state.last_seen, 1e-6)
        vx, vy = (nx - ox) / dt, (ny - oy) / dt
        # Smooth so that one jittery box does not throw the prediction off.
        if state.hits > 1:
            vx, vy = 0.5 * (state.velocity[0] + vx), 0.5 * (state.velocity[1] + vy)
        state.velocity = (vx, vy)
        state.box, state.score, state.last_seen = det.box, det.score, now
        state.hits += 1
        state.missed = 0

    def _new(self, det: Detection, now: float) -> _State:
        self._created += 1
        return _State(self._created, f"{self.id_prefix}face_{self._created}", det.box, det.score, now)
