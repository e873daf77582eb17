"""Which faces ``/humans/faces/tracked`` (REP-155) lists across several cameras, ROS-free.

A face stays listed while its camera's tracker keeps it: until it has been missing from its
camera's results for longer than ``patience_s`` (the tracker's ``track_patience_s``, camera
time). A camera that stops sends no more results, so the same clock ends its faces: they go once
unseen for ``patience_s``, as they would have left a running camera's view.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable


class TrackedFaces:
    """Thread-safe: results arrive on the worker thread, expiry runs on a timer.

    Times are seconds of one monotonic clock, passed in by the caller.
    """

    def __init__(self, patience_s: float):
        if patience_s < 0:
            raise ValueError(f"patience_s must be >= 0, got {patience_s}")
        self.patience_s = float(patience_s)
        self._seen: dict[str, dict[str, float]] = {}  # camera -> face id -> when last seen
        self._lock = threading.Lock()

    def update(self, source: str, face_ids: Iterable[str], now_s: float) -> list[str]:
        """Fold in one result of ``source`` (the ids visible in it); returns the new list."""
        with self._lock:
            seen = self._seen.setdefault(source, {})
            seen.update(dict.fromkeys(face_ids, now_s))
            self._drop_older(now_s, [seen])  # other cameras' faces go on the expiry timer
            return self._ids()

    def expire(self, now_s: float) -> bool:
        """Forget faces unseen for longer than the patience (stopped cameras too); True if any went."""
        with self._lock:
            return self._drop_older(now_s, self._seen.values())

    def ids(self) -> list[str]:
        with self._lock:
            return self._ids()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def _drop_older(self, now_s: float, cameras) -> bool:
        changed = False
        for seen in cameras:
            for face_id in [f for f, t in seen.items() if now_s - t > self.patience_s]:
                del seen[face_id]
                changed = True
        return changed

    def _ids(self) -> list[str]:
        return sorted({face_id for seen in self._seen.values() for face_id in seen})
