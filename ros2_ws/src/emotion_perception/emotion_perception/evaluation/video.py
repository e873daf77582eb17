"""Video files and cameras as Frame sources (OpenCV), and the annotated-video writer.

Stamps: a video file's frames are stamped ``start + the decoder's presentation time``
(CAP_PROP_POS_MSEC; ``index / fps`` where the container gives none), so the spacing follows the
file, not the speed of reading it. A camera's frames are stamped with the wall clock when grabbed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..types import Frame

DEFAULT_FPS = 30.0  # used when a container reports no frame rate


class VideoError(Exception):
    """A video file or camera that cannot be opened or decoded."""


class VideoSource:
    """Frames of a video file, RGB, with stamps from the file's timing."""

    def __init__(self, path: str | Path, start_ns: int | None = None, frame_id: str = "camera",
                 source: str = ""):
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"no video file at {self.path}")
        self.start_ns = time.time_ns() if start_ns is None else int(start_ns)
        self.frame_id = frame_id
        self.source = source
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened()
        fps = cap.get(cv2.CAP_PROP_FPS) if ok else 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
        ok = ok and cap.read()[0]
        cap.release()
        if not ok:
            raise VideoError(f"cannot read video {self.path}: not a video OpenCV can decode (or no frames)")
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS
        self.frame_count = max(count, 0)  # container's estimate; 0 when unknown

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            last_ns = -1
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                offset = int(round(pos_ms * 1e6)) if pos_ms and pos_ms > 0 else int(round(index * 1e9 / self.fps))
                if offset <= last_ns:  # some containers repeat or omit times; keep stamps increasing
                    offset = int(round(index * 1e9 / self.fps))
                last_ns = offset
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(rgb, self.start_ns + offset, self.frame_id, self.source)
                index += 1
        finally:
            cap.release()

    def __len__(self) -> int:
        return self.frame_count


class CameraSource:
    """Frames of a camera (OpenCV device index), stamped with the wall clock when grabbed.

    ``max_frames`` / ``duration`` end the stream; otherwise it runs until Ctrl-C.
    """

    def __init__(self, index: int, frame_id: str = "camera", max_frames: int = 0, duration: float = 0.0,
                 source: str = ""):
        self.index = int(index)
        self.frame_id = frame_id
        self.max_frames = int(max_frames)
        self.duration = float(duration)
        self.source = source
        self._cap = cv2.VideoCapture(self.index)
        if not self._cap.isOpened():
            raise VideoError(f"cannot open camera {self.index} (no such device, or it is busy)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        count = 0
        try:
            while not self.max_frames or count < self.max_frames:
                if self.duration and time.monotonic() - start >= self.duration:
                    break
                ok, bgr = self._cap.read()
                stamp = time.time_ns()
                if not ok:
                    if count == 0:
                        raise VideoError(f"camera {self.index} opened but delivers no frames")
                    break
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), stamp, self.frame_id, self.source)
                count += 1
        finally:
            self._cap.release()

    def __len__(self) -> int:
        return self.max_frames


def open_source(spec: str, start_ns: int | None = None, frame_id: str = "camera", max_frames: int = 0,
                duration: float = 0.0):
    """A camera for a bare integer (device index), otherwise a video file."""
    if spec.isdigit():
        return CameraSource(int(spec), frame_id, max_frames, duration)
    return VideoSource(spec, start_ns, frame_id)


class VideoWriter:
    """Writes RGB frames to an .mp4 (mp4v) or .avi (MJPG); opened at the first frame's size.

    Frames of another size are resized to the first one's, so a stream whose resolution changes
    still gives one playable file.
    """

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.fps = float(fps) if fps > 0 else DEFAULT_FPS
        self.frames = 0
        self._writer = None
        self._size: tuple[int, int] | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self._size = (rgb.shape[1], rgb.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise VideoError(f"cannot write video {self.path} (use .mp4 or .avi)")
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = cv2.resize(rgb, self._size)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
