"""Per-stage latency statistics over a sliding window of recent frames."""
from __future__ import annotations

from collections import deque

import numpy as np


class LatencyStats:
    """Keeps the last ``history`` samples per stage; reports mean / p50 / p95 in milliseconds."""

    def __init__(self, history: int = 1000):
        self.history = history
        self._samples: dict[str, deque[float]] = {}

    def add(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self._samples.setdefault(stage, deque(maxlen=self.history)).append(float(ms))

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, samples in self._samples.items():
            values = np.fromiter(samples, dtype=np.float64)
            out[stage] = {
                "mean": float(values.mean()),
                "p50": float(np.percentile(values, 50)),
                "p95": float(np.percentile(values, 95)),
                "n": int(values.size),
            }
        return out

    def clear(self) -> None:
        self._samples.clear()
