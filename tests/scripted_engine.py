"""A stand-in for PerceptionEngine whose answers and speed a test sets, to check the replay and
scoring plumbing against known results (the real engine runs in test_cli's demo test)."""
from __future__ import annotations

import time

import numpy as np

from emotion_perception.types import Box, EmotionEstimate, Frame

NO_FACE = 255  # a frame whose first pixel is 255 has no face


def coded_frame(class_id: int | None, stamp_ns: int, size=(32, 48)) -> Frame:
    """A frame that tells ScriptedEngine its answer: first pixel = class id (NO_FACE: none)."""
    image = np.full((*size, 3), 128, np.uint8)
    image[0, 0, 0] = NO_FACE if class_id is None else class_id
    return Frame(image, stamp_ns, "cam")


class ScriptedEngine:
    """engine.process(frame) -> one face of the class coded in the frame, after ``delay`` s."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.frames = self.dropped = 0

    def process(self, frame: Frame) -> list[EmotionEstimate]:
        if self.delay:
            time.sleep(self.delay)
        self.frames += 1
        code = int(frame.image[0, 0, 0])
        if code == NO_FACE:
            return []
        probs = np.full(7, 0.02, np.float32)
        probs[code] = 0.88
        return [EmotionEstimate("face_1", Box(4, 4, 20, 20), probs, 1, "scripted", frame.stamp_ns, frame.frame_id,
                                timings_ms={"total": self.delay * 1e3}, person_id="person_1")]

    def process_batch(self, frames: list[Frame]) -> list[list[EmotionEstimate]]:
        return [self.process(f) for f in frames]

    def record_drop(self, n: int = 1) -> None:
        self.dropped += n

    def stats(self) -> dict:
        return {"frames": self.frames, "dropped": self.dropped}
