"""Give detected faces ids that stay stable while a face stays in view.

The engine keeps a window of per-frame features per face, so an id switch throws that window
away. Matching therefore tolerates what cameras do to faces: a few missed detections (patience),
fast motion (constant-velocity prediction, then a centre-distance fallback when boxes no longer
overlap), and two faces passing each other (greedy matching on the highest overlap first).
Ids are never reused within a run, so a consumer can key state on them without collisions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..types import Box, Detection


@dataclass(frozen=True)
class Track:
    """A snapshot of one tracked face. ``missed`` = frames since it was last detected."""

    track_id: str
    box: Box
    score: float
    hits: int
    missed: int


@dataclass(frozen=True)
class TrackerUpdate:
    visible: list[Track]  # tracks matched in this frame, oldest track first
    expired: list[str]  # ids whose face has been gone for more than max_missed frames


@dataclass
class _State:
    number: int
    track_id: str
    box: Box
    score: float
    hits: int = 1
    missed: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion, pixels per frame

    def predicted(self) -> Box:
        """Where the face should be now if it kept moving as before."""
        steps = self.missed + 1
        dx, dy = self.velocity[0] * steps, self.velocity[1] * steps
        return Box(self.box.x + dx, self.box.y + dy, self.box.w, self.box.h)

    def snapshot(self) -> Track:
        return Track(self.track_id, self.box, self.score, self.hits, self.missed)


def _centre_distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = a.center, b.center
    return math.hypot(ax - bx, ay - by)


class FaceTracker:
    """IoU tracker with motion prediction, patience and expiry.

    ``iou_threshold``: least overlap of a detection with a track's predicted box to match it.
    ``max_missed``: frames a track may go undetected and still keep its id.
    ``max_jump``: the centre-distance fallback matches a detection whose centre is within
    ``max_jump`` box sides of the prediction and whose size is within a factor 2.
    """

    def __init__(
        self, iou_threshold: float = 0.3, max_missed: int = 5, id_prefix: str = "", max_jump: float = 1.0
    ):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.id_prefix = id_prefix
        self.max_jump = float(max_jump)
        self._tracks: list[_State] = []
        self._created = 0

    @property
    def tracks(self) -> list[Track]:
        """All live tracks, including those missed in recent frames."""
        return [t.snapshot() for t in self._tracks]

    def update(self, detections: list[Detection]) -> TrackerUpdate:
        predictions = [t.predicted() for t in self._tracks]
        free_tracks = set(range(len(self._tracks)))
        free_dets = set(range(len(detections)))
        matches: list[tuple[int, int]] = []

        def take(pairs: list[tuple[float, int, int]]) -> None:
            for _, ti, di in sorted(pairs):
                if ti in free_tracks and di in free_dets:
                    matches.append((ti, di))
                    free_tracks.discard(ti)
                    free_dets.discard(di)

        take(
            [
                (-iou, ti, di)
                for ti, pred in enumerate(predictions)
                for di, det in enumerate(detections)
                if (iou := pred.iou(det.box)) >= self.iou_threshold
            ]
        )
        take(
            [
                (dist, ti, di)
                for ti in free_tracks
                for di in free_dets
                if (dist := _centre_distance(predictions[ti], detections[di].box))
                <= self.max_jump * max(predictions[ti].w, predictions[ti].h)
                and 0.5 <= detections[di].box.area / max(predictions[ti].area, 1e-9) <= 2.0
            ]
        )

        for ti, di in matches:
            self._refresh(self._tracks[ti], detections[di])
        expired = []
        for ti in sorted(free_tracks):
            state = self._tracks[ti]
            state.missed += 1
            if state.missed > self.max_missed:
                expired.append(state.track_id)
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for di in sorted(free_dets):
            self._tracks.append(self._new(detections[di]))

        visible = [t.snapshot() for t in sorted(self._tracks, key=lambda t: t.number) if t.missed == 0]
        return TrackerUpdate(visible=visible, expired=expired)

    def _refresh(self, state: _State, det: Detection) -> None:
        (ox, oy), (nx, ny) = state.box.center, det.box.center
        steps = state.missed + 1
        vx, vy = (nx - ox) / steps, (ny - oy) / steps
        # Smooth so that one jittery box does not throw the prediction off.
        if state.hits > 1:
            vx, vy = 0.5 * (state.velocity[0] + vx), 0.5 * (state.velocity[1] + vy)
        state.velocity = (vx, vy)
        state.box, state.score = det.box, det.score
        state.hits += 1
        state.missed = 0

    def _new(self, det: Detection) -> _State:
        self._created += 1
        return _State(self._created, f"{self.id_prefix}face_{self._created}", det.box, det.score)
