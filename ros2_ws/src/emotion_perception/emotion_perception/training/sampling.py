"""Frame ordering and uniform temporal sampling of clips.

A clip of ``n`` frames is split into ``T`` segments with integer bounds
``[i*n//T, (i+1)*n//T)``; at test time each segment gives its middle frame, in training a random
frame of the segment (TSN-style). A clip shorter than ``T`` gives every frame once, followed by
padding that the validity mask marks — frames are never silently repeated, so the model sees how
long the clip really is.
"""
from __future__ import annotations

import re

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: frame_2 < frame_10."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p.lower()) for p in parts)


def natural_sorted(names) -> list[str]:
    return sorted(names, key=natural_key)


def frame_names(names) -> list[str]:
    """The image files among ``names``, in natural order (other files are ignored)."""
    return natural_sorted(n for n in names if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith("."))


def segment_bounds(n_frames: int, num_segments: int) -> np.ndarray:
    """[T, 2] integer (start, stop) of each of ``num_segments`` equal segments of ``n_frames``."""
    i = np.arange(num_segments + 1, dtype=np.int64)
    edges = i * n_frames // num_segments
    return np.stack([edges[:-1], edges[1:]], axis=1)


def sample_indices(
    n_frames: int, num_segments: int, *, train: bool = False, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices and validity mask for one clip.

    Returns ``(indices, mask)``, both of length ``num_segments``; where ``mask`` is False the index
    is -1 (a padding slot). Test time (``train=False``) is deterministic.
    """
    if n_frames <= 0:
        raise ValueError("cannot sample frames from an empty clip")
    if num_segments <= 0:
        raise ValueError(f"number of frames to sample must be positive, got {num_segments}")
    indices = np.full(num_segments, -1, dtype=np.int64)
    mask = np.zeros(num_segments, dtype=bool)
    if n_frames < num_segments:
        indices[:n_frames] = np.arange(n_frames)
        mask[:n_frames] = True
        return indices, mask
    bounds = segment_bounds(n_frames, num_segments)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        indices[:] = rng.integers(bounds[:, 0], bounds[:, 1])
    else:
        indices[:] = (bounds[:, 0] + bounds[:, 1]) // 2
    mask[:] = True
    return indices, mask


def matching_indices(indices: np.ndarray, mask: np.ndarray, n_source: int, n_target: int) -> np.ndarray:
    """Map frame indices of one stream onto another stream of the same clip with a different count.

    Used when a dataset's scene frames and face crops of a clip differ in number: each face frame is
    paired with the scene frame at the same relative time.
    """
    out = np.full_like(indices, -1)
    if n_source == n_target:
        out[mask] = indices[mask]
    elif n_source == 1:
        out[mask] = 0
    else:
        out[mask] = np.rint(indices[mask] * (n_target - 1) / (n_source - 1)).astype(np.int64)
    return out
