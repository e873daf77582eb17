"""CPU thread counts as one setting: torch intra-op and inter-op pools and OpenCV's pool.

A robot's cores are shared with the camera driver, SLAM and the dialogue stack. torch and OpenCV
default to one thread per core, and a parallel op waits for its slowest thread: when another
process holds a core, every op stalls on it (the lite profile fell from ~50 to ~5 frames/s with
two busy-looping processes on two cores, benchmarks/README.md). A small fixed count avoids that.

The counts are process-wide. torch accepts the inter-op pool size only once per process and only
before any inter-op work has run; a later, different request keeps the pool as it is and says so
once, instead of failing.
"""
from __future__ import annotations

import logging

import cv2
import torch

log = logging.getLogger(__name__)

_interop_note_given = False


def thread_counts() -> dict[str, int]:
    """The counts in force now: torch intra-op and inter-op, OpenCV."""
    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
            "opencv": cv2.getNumThreads()}


def apply_threads(threads: int) -> dict[str, int]:
    """Use ``threads`` CPU threads for torch (intra-op and inter-op) and OpenCV in this process.

    ``threads`` 0 leaves the current settings alone. Returns ``thread_counts()`` afterwards.
    """
    global _interop_note_given
    threads = int(threads)
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: keep the process's settings), got {threads}")
    if threads == 0:
        return thread_counts()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError as err:  # already set, or inter-op work already ran in this process
            if not _interop_note_given:
                _interop_note_given = True
                log.warning("torch inter-op threads stay at %d, not %d: torch sets them once per process "
                            "(%s); intra-op and OpenCV threads are %d", torch.get_num_interop_threads(),
                            threads, err, threads)
    return thread_counts()
