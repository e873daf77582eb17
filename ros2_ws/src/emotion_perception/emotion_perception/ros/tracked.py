"""Which faces ``/humans/faces/tracked`` (REP-155) lists across several cameras, ROS-free.

A face stays listed while its camera's tracker keeps it: until it has been missing from more
than ``patience`` consecutive results of its camera (the tracker's ``max_missed``). A camera
that stops sends no more frames, so its tracker never counts those misses; there time stands in
for frames: its faces go once it has been silent for ``patience + 1`` of its usual intervals
between results (processed frames, what the tracker counts). So a stopped camera's people leave
the list about as fast as they would have left a running camera's view.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class _Camera:
    last_s: float  # when its last result came
    interval_s: float | None = None  # smoothed time between its results
    missed: dict[str, int] = field(default_factory=dict)  # face id -> results it was missing from


class TrackedFaces:
    """Thread-safe: results arrive on the worker thread, expiry runs on a timer.

    ``first_interval_s`` stands in for a camera's frame interval until it has sent two results.
    Times are seconds of one monotonic clock, passed in by the caller.
    """

    SMOOTHING = 0.2  # weight of the newest interval in the running mean

    def __init__(self, patience: int, first_interval_s: float = 1.0):
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.patience = int(patience)
        self.first_interval_s = float(first_interval_s)
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()

    def update(self, source: str, face_ids: Iterable[str], now_s: float) -> list[str]:
        """Fold in one result of ``source`` (the ids visible in it); returns the new list."""
        visible = set(face_ids)
        with self._lock:
            camera = self._cameras.get(source)
            if camera is None:
                camera = self._cameras[source] = _Camera(now_s)
            else:
                dt = max(0.0, now_s - camera.last_s)
                camera.interval_s = dt if camera.interval_s is None else (
                    (1 - self.SMOOTHING) * camera.interval_s + self.SMOOTHING * dt)
                camera.last_s = now_s
            for face_id in list(camera.missed):
                if face_id not in visible:
                    camera.missed[face_id] += 1
                    if camera.missed[face_id] > self.patience:
                        del camera.missed[face_id]
            camera.missed.update(dict.fromkeys(visible, 0))
            return self._ids()

    def expire(self, now_s: float) -> bool:
        """Forget the faces of cameras silent for longer than their patience; True if any went."""
        changed = False
        with self._lock:
            for camera in self._cameras.values():
                interval = self.first_interval_s if camera.interval_s is None else camera.interval_s
                if camera.missed and now_s - camera.last_s > (self.patience + 1) * interval:
                    camera.missed.clear()
                    changed = True
        return changed

    def ids(self) -> list[str]:
        with self._lock:
            return self._ids()

    def clear(self) -> None:
        with self._lock:
            self._cameras.clear()

    def _ids(self) -> list[str]:
        return sorted({face_id for camera in self._cameras.values() for face_id in camera.missed})
