"""Per-face smoothing of the published class probabilities, so one bad frame does not flip the answer.

The model's own window (``EngineConfig.window``) already gives a moving mean of the last N frames
for the lite head; these act after the head, per track, on camera time (frame stamps):

- ``ema``: exponential moving average with time constant ``time_s``: a frame ``dt`` seconds
  after the last one moves the estimate by ``1 - exp(-dt / time_s)`` towards the new answer, so
  the smoothing is the same at 10 and at 30 frames/s.
- ``hysteresis``: the class last published is held until another class leads it by more than
  ``margin``: the published distribution is ``(p + margin * onehot(held)) / (1 + margin)``,
  whose argmax changes only then.
- ``none``: the head's output as is.
"""
from __future__ import annotations

import math

import numpy as np

SMOOTHING = ("none", "ema", "hysteresis")


class Smoother:
    """Smoothing state per face key (e.g. (source, track id)); ``release`` forgets one."""

    def __init__(self, kind: str = "none", time_s: float = 0.5, margin: float = 0.15):
        if kind not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {kind!r}")
        if time_s <= 0 or margin < 0:
            raise ValueError(f"smoothing time_s must be > 0 and margin >= 0, got {time_s}, {margin}")
        self.kind, self.time_s, self.margin = kind, float(time_s), float(margin)
        self._state: dict = {}  # key -> (last stamp s, smoothed probs) or held class

    def __call__(self, key, probs: np.ndarray, now: float) -> np.ndarray:
        if self.kind == "none":
            return probs
        if self.kind == "ema":
            last = self._state.get(key)
            if last is not None:
                alpha = 1.0 - math.exp(-max(now - last[0], 0.0) / self.time_s)
                probs = last[1] + alpha * (probs - last[1])
            self._state[key] = (now, probs)
            return probs
        held = self._state.get(key, int(np.argmax(probs)))
        out = probs.copy()
        out[held] += self.margin
        out /= 1.0 + self.margin
        self._state[key] = int(np.argmax(out))
        return out

    def release(self, key) -> None:
        self._state.pop(key, None)

    def keys(self) -> list:
        return list(self._state)
