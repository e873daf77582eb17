"""In-memory face/scene clips whose class shows in colour and stripe pattern (for learning tests).

Faces get a per-class colour and stripe period; scenes a per-polarity background. Every frame gets
its own noise, so a head has to learn the class from the pattern, not memorise pixels.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotion_perception.labels import polarity_target

FACE_COLOURS = {0: (230, 200, 40), 1: (40, 60, 200), 3: (200, 30, 30), 4: (40, 200, 80)}
STRIPES = {0: 4, 1: 8, 3: 16, 4: 32}
SCENE_COLOURS = {0: (60, 20, 90), 1: (128, 128, 128), 2: (250, 230, 160)}  # per polarity


def make_clips(classes=(0, 1, 3, 4), per_class=8, frames=4, size=64, seed=0):
    """(faces [N, T, S, S, 3] uint8, scenes (same shape), labels [N] int64)."""
    rng = np.random.default_rng(seed)
    n = len(classes) * per_class
    faces = np.empty((n, frames, size, size, 3), np.int16)
    scenes = np.empty_like(faces)
    labels = np.repeat(np.asarray(classes), per_class)
    stripe_rows = np.arange(size)[:, None]
    for i, c in enumerate(labels):
        band = ((stripe_rows // STRIPES[c]) % 2 * 60)[None, :, :, None]  # [1, S, 1, 1]
        faces[i] = np.asarray(FACE_COLOURS[c]) + band - 30
        scenes[i] = np.asarray(SCENE_COLOURS[polarity_target(int(c))])
    faces += rng.integers(-25, 26, faces.shape, dtype=np.int16)
    scenes += rng.integers(-25, 26, scenes.shape, dtype=np.int16)
    return _to_uint8(faces), _to_uint8(scenes), torch.from_numpy(labels).long()


def _to_uint8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run far faster on one thread (no OpenMP hand-offs); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
