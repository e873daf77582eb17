"""Video files and cameras as Frame sources (OpenCV), and the annotated-video writer.

Stamps: a video file's frames are stamped ``start + the decoder's presentation time``
(CAP_PROP_POS_MSEC; ``index / fps`` where the container gives none), so the spacing follows the
file, not the speed of reading it. A camera's frames are stamped with the wall clock when grabbed.
"""
from __future__ import annotations

import contextlib
import os
import sys
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
        if cv2.haveImageReader(str(self.path)):  # by content: OpenCV would play a photo as a 1-frame video
            raise VideoError(f"{self.path} is a still image, not a video: give a video file, a rosbag2 or a camera "
                             "index (a clip of a photo: ffmpeg -loop 1 -i photo.png -t 5 -r 15 clip.mp4)")
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


# Codecs per file type, first choice first. Browsers play H.264 mp4 and VP8 webm; the
# opencv-python(-headless) wheels carry a VP8 encoder but no H.264 one, so .mp4 then falls back to
# MPEG-4 Part 2 (mp4v), which desktop players play and browsers do not.
CODECS = {".webm": ("VP80",), ".mp4": ("avc1", "mp4v"), ".avi": ("MJPG",)}
BROWSER_CODECS = ("VP80", "avc1")


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the lines OpenCV's FFmpeg back end prints straight to fd 2 while probing codecs
    ("tag ... is not supported", "could not find encoder"); our own error says what failed."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_video_path(path: str | Path) -> Path:
    """``path`` if its file type is one VideoWriter writes; a VideoError otherwise."""
    path = Path(path)
    if path.suffix.lower() not in CODECS:
        raise VideoError(f"cannot write video {path}: use .webm (VP8, plays in browsers), .mp4 or .avi")
    return path


class VideoWriter:
    """Writes RGB frames to a .webm (VP8), .mp4 (H.264 where OpenCV has an encoder, else mp4v)
    or .avi (MJPG) at ``fps``; opened at the first frame's size.

    Frames of another size are resized to the first one's, so a stream whose resolution changes
    still gives one playable file. ``codec`` says which codec was used once a frame is written.
    """

    def __init__(self, path: str | Path, fps: float):
        self.path = check_video_path(path)
        self.fps = float(fps) if fps > 0 else DEFAULT_FPS
        self.frames = 0
        self.codec: str | None = None
        self._writer = None
        self._size: tuple[int, int] | None = None

    @property
    def browser_note(self) -> str:
        """Empty when browsers play the file; otherwise why not and what does."""
        if self.codec is None or self.codec in BROWSER_CODECS:
            return ""
        return (f"{self.path.name} is {self.codec}, which browsers do not play (desktop players do)"
                + ("; this OpenCV has no H.264 encoder" if self.path.suffix.lower() == ".mp4" else "")
                + ": a .webm video (VP8) plays in browsers")

    def _open(self, size: tuple[int, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for codec in CODECS[self.path.suffix.lower()]:
            with _quiet_stderr():
                writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps, size)
            if writer.isOpened():
                self._writer, self.codec, self._size = writer, codec, size
                return
        raise VideoError(f"cannot write video {self.path}: this OpenCV build has no encoder for "
                         f"{' or '.join(CODECS[self.path.suffix.lower()])}")

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self._open((rgb.shape[1], rgb.shape[0]))
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = cv2.resize(rgb, self._size)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
