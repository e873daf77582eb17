"""The streaming perception engine: frames in, one EmotionEstimate per tracked face out.

Why it is fast (docs/DESIGN.md, "The engine"): naive clip inference re-encodes the whole window (16 frames x
face and scene) for every prediction. Here every frame is encoded once:

* Faces: per track, a ring buffer (``WindowBuffers``) of its last ``window`` face features. Each
  frame, all visible faces of all frames in the call go through ``encode_faces`` in ONE batch,
  and the head (``forward_window``) runs on the cached windows.
* Scene: per source, the scene (whole frame resized to ``scene_size``) is encoded on the source's
  frames 0, k, 2k, ... (k = ``scene_interval``), including frames without faces; the latest
  scene feature is reused in between. Each track's buffer stores, next to the face feature of a
  frame, the scene feature current at that frame, so the face and scene windows are frame-aligned
  and a window equals ``model.forward`` on a clip whose scene frame t is the frame last
  encoded at or before t. With k = 1 that is exactly the clip of the track's frames.
* CUDA: crops are resized by cv2 straight into pinned host buffers, uploaded on a copy stream,
  encoded on separate face and scene streams joined to the current stream by events, under
  fp16/bf16 autocast. On CPU the same code runs with null streams (see ``device.Streams``).
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, field, make_dataclass

import cv2
import numpy as np
import torch

from ..errors import WeightsMissingError
from ..faces import FaceTracker, crop_face
from ..faces.align import RollEstimator, TrackRolls, crop_angle
from ..faces.follow import FaceFollower
from ..images import check_rgb
from ..settings import ENGINE_SETTINGS
from ..models.base import EmotionModel
from ..types import Box, Detection, EmotionEstimate, Frame
from .buffers import WindowBuffers
from .device import Staging, Streams, autocast, resolve_device
from .smoothing import Smoother
from .stats import LatencyStats
from .threads import apply_threads

log = logging.getLogger(__name__)

STAGES = ("detect", "identify", "crop", "encode_face", "encode_scene", "head", "total")
# face_align measures a track's roll again after this much camera time (faces/align.TrackRolls):
# 6 frames at 30 frames/s, well inside the lite model's 8-frame window
ALIGN_REFRESH_S = 0.1


_PYTHON_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _check_config(self) -> None:
    """Each field within its table range and choices; the smoothing settings together."""
    for p in ENGINE_SETTINGS:
        value = getattr(self, p.name)
        if p.low is not None and value < p.low:
            raise ValueError(f"EngineConfig.{p.name} must be >= {p.low:g}, got {value}")
        if p.high is not None and value > p.high:
            raise ValueError(f"EngineConfig.{p.name} must be <= {p.high:g}, got {value}")
        if p.choices and value not in p.choices:
            raise ValueError(f"EngineConfig.{p.name} must be one of {list(p.choices)}, got {value!r}")
    Smoother(self.smoothing, self.smoothing_time_s, self.smoothing_margin)  # checks the settings


# The engine's settings, one field per row of settings.ENGINE_SETTINGS (its type, default, range
# and description are there): adding a setting is one line in that table.
EngineConfig = make_dataclass(
    "EngineConfig",
    [(p.name, _PYTHON_TYPES[p.kind], field(default=p.fallback)) for p in ENGINE_SETTINGS],
    namespace={"__post_init__": _check_config, "__module__": __name__,
               "__doc__": "The engine's settings (settings.ENGINE_SETTINGS); invalid values are a ValueError."},
    frozen=True,
)


class _Source:
    """Per-camera state: its tracker, frame counter, latest scene feature and when the whole frame
    was last searched for faces (``search_now``: a tracked face was not re-found, look everywhere)."""

    def __init__(self, config: EngineConfig, id_prefix: str, redetector=None):
        self.tracker = FaceTracker(config.iou_threshold, config.track_patience_s, id_prefix,
                                   memory_s=config.track_memory_s)
        self.frames = 0
        self.scene: torch.Tensor | None = None
        self.follower = FaceFollower(redetector) if redetector is not None and config.detect_interval_s > 0 else None
        self.searched_at: float | None = None
        self.search_now = True


def _resize_into(src: np.ndarray, dst: np.ndarray) -> None:
    """Resize ``src`` into the preallocated ``dst`` (a slice of a staging buffer) without a copy."""
    interp = cv2.INTER_AREA if src.shape[0] > dst.shape[0] or src.shape[1] > dst.shape[1] else cv2.INTER_LINEAR
    cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=interp)


def check_frame(frame: Frame | np.ndarray) -> Frame:
    """A Frame, or a bare HxWx3 uint8 array wrapped in one; anything else is a ValueError."""
    image = frame.image if isinstance(frame, Frame) else frame
    if not isinstance(image, np.ndarray):
        raise ValueError(f"engine expects a Frame or an HxWx3 uint8 numpy array, got {type(frame).__name__}")
    if image.dtype.kind in "fc" and image.size and np.isnan(image).any():
        raise ValueError(f"frame contains NaN pixels (shape {image.shape}, dtype {image.dtype})")
    try:
        check_rgb(image)
    except ValueError as err:
        raise ValueError(f"engine got a bad frame: {err}") from err
    return frame if isinstance(frame, Frame) else Frame(image)


class PerceptionEngine:
    """Detect, track, encode and classify the faces of camera frames, one frame at a time.

    ``detector`` is anything with ``detect(rgb) -> list[Detection]``. ``redetector`` (default: the
    detector, if it has one) has ``redetect(rgb, boxes) -> list[Detection | None]``: it re-finds
    already tracked faces near their predicted boxes far more cheaply than a whole-frame search
    (``faces/follow.py``; the boxes keep the detector's style, learnt on each searched frame
    unless the detector is its own re-detector). With ``config.detect_interval_s``
    > 0 and a re-detector, the whole frame is searched only every that many seconds of camera
    time, on a camera's first frame, and on the frame after a tracked face was not re-found: new
    faces appear within that interval, and a face that was just lost is looked for everywhere;
    while the re-detector cannot find a face the detector found, every frame is searched; a
    followed face that a search misses is looked for by the re-detector on that frame.
    Thread-safe: one call at a time (``LatestFrameWorker`` runs it on its own thread while others
    read ``stats()``).

    Face ids are unique across cameras: with one camera they read ``face_<n>``; once the engine
    serves several (``set_cameras``), every id carries its camera's index: ``cam0_face_1``,
    ``cam1_face_1``. A source nobody declared gets the next index when it first appears.

    ``identity`` (optional; ``persons.PersonIdentifier``) gives each estimate a ``person_id``
    that survives absences: the engine hands it every reported face with whether its frame was
    searched whole, and tells it when a track ends; when and how often it embeds is its business.
    """

    def __init__(self, model: EmotionModel, detector, config: EngineConfig | None = None, redetector=None,
                 identity=None):
        if not callable(getattr(detector, "detect", None)):
            raise TypeError(f"detector must have a detect(rgb) method, got {type(detector).__name__}")
        redetector = redetector if redetector is not None else detector
        self.redetector = redetector if callable(getattr(redetector, "redetect", None)) else None
        self.config = config or EngineConfig()
        self.threads = apply_threads(self.config.threads)
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device).eval()
        self.model_id = model.model_id or type(model).__name__
        self.detector = detector
        self.identity = identity
        self.uses_scene = bool(model.uses_scene)
        self._streams = Streams(self.device, self.config.cuda_streams)
        cap = self.config.max_faces
        self._face_staging = Staging(model.face_size, self.device, self._streams, capacity=cap)
        self._scene_staging = Staging(model.scene_size, self.device, self._streams, capacity=1) if self.uses_scene else None
        streams = ("face", "scene") if self.uses_scene else ("face",)
        self.buffers = WindowBuffers(self.config.window, self.device, streams, capacity=2 * cap)
        self._sources: dict[str, _Source] = {}
        self._smoother = Smoother(self.config.smoothing, self.config.smoothing_time_s, self.config.smoothing_margin)
        self._roll = self._roll_estimator() if self.config.face_align else None
        self._cameras: list[str] = []  # sources in camera-index order
        self._latency = LatencyStats()
        self._frames = self._faces = self._dropped = self._searches = 0
        self._lock = threading.RLock()  # one frame at a time
        self._stats_lock = threading.Lock()  # counters: readable while a frame is in progress

    # ------------------------------------------------------------------ public API
    def process(self, frame: Frame | np.ndarray) -> list[EmotionEstimate]:
        """Estimates for every face visible in ``frame`` (empty list when there is none)."""
        return self.process_batch([frame])[0]

    def process_batch(self, frames: Sequence[Frame | np.ndarray]) -> list[list[EmotionEstimate]]:
        """Several cameras at once: all their faces go through the encoder in one batch.

        Tracks are kept per ``Frame.source``; at most one frame per source per call, since a
        track's window can take one frame at a time.
        """
        frames = [check_frame(f) for f in frames]
        sources = [f.source for f in frames]
        if len(set(sources)) != len(sources):
            raise ValueError(f"process_batch takes at most one frame per source, got sources {sources}")
        if not frames:
            return []
        with self._lock, torch.inference_mode():
            return self._run(frames)

    def stats(self) -> dict:
        """Counters and per-stage latency (ms: mean / p50 / p95 over recent frames).

        Never waits for the frame in progress (its own lock), so a diagnostics timer can call it.
        """
        with self._stats_lock:
            return {
                "frames": self._frames,
                "searches": self._searches,  # frames searched whole for faces (the rest: followed)
                "faces": self._faces,
                "dropped": self._dropped,
                "active_tracks": len(self.buffers),
                "sources": len(self._sources),
                "latency_ms": self._latency.summary(),
                "device": str(self.device),
                "precision": self.config.precision,
                "cuda_streams": self._streams.enabled,
                "threads": self.threads,
                "model_id": self.model_id,
                "config": asdict(self.config),
            }

    def record_drop(self, n: int = 1) -> None:
        """Count frames dropped before reaching the engine (by ``LatestFrameWorker``); never blocks on a frame."""
        with self._stats_lock:
            self._dropped += n

    def reset_stats(self) -> None:
        """Zero the counters and latency history (e.g. after a warm-up)."""
        with self._stats_lock:
            self._frames = self._faces = self._dropped = self._searches = 0
            self._latency.clear()

    def set_cameras(self, sources: Sequence[str]) -> None:
        """Declare the cameras (``Frame.source`` values) in index order, e.g. the node's image
        topics; with two or more, each face id starts with ``cam<index>_``. Forgets all tracks."""
        sources = list(sources)
        if len(set(sources)) != len(sources):
            raise ValueError(f"set_cameras: sources must be distinct, got {sources}")
        with self._lock:
            self.reset()
            self._cameras = sources

    def _new_source(self, source: str) -> _Source:
        if source not in self._cameras:
            self._cameras.append(source)
        index = self._cameras.index(source)
        return _Source(self.config, f"cam{index}_" if len(self._cameras) > 1 else "", self.redetector)

    def reset(self, source: str | None = None) -> None:
        """Forget the tracks, windows and scene of one source (all sources with None)."""
        with self._lock:
            for name in [source] if source is not None else list(self._sources):
                self._sources.pop(name, None)
                for key in self.buffers.keys():
                    if key[0] == name:
                        self.buffers.release(key)
                for key in self._smoother.keys():
                    if key[0] == name:
                        self._smoother.release(key)
                for key in self._roll.keys() if self._roll is not None else ():
                    if key[0] == name:
                        self._roll.release(key)
                if self.identity is not None:
                    self.identity.reset(name)

    # ------------------------------------------------------------------ stages
    def _run(self, frames: list[Frame]) -> list[list[EmotionEstimate]]:
        t_start = time.perf_counter()
        streams = self._streams
        for frame in frames:
            if frame.source not in self._sources:
                self._sources[frame.source] = self._new_source(frame.source)
        states = [self._sources[f.source] for f in frames]

        # detect + track (host)
        faces: list[tuple[int, object]] = []  # (frame index, Track)
        searched_frames = set()
        for i, (frame, state) in enumerate(zip(frames, states)):
            now = state.tracker.next_time(frame.stamp_ns / 1e9)
            searched = self._search_due(state, now)
            if searched:
                searched_frames.add(i)
            found = self._detect(frame.image) if searched else self._follow(frame.image, state, now)
            if searched and state.follower is not None:
                found = self._keep_followed(frame.image, state, now, found)
            update = state.tracker.update(found, now)
            if searched and state.follower is not None and self.redetector is not self.detector:
                state.search_now = not state.follower.learn(frame.image, [(t.track_id, t.box) for t in update.visible])
            for track_id in update.expired:
                self.buffers.release((frame.source, track_id))
                self._smoother.release((frame.source, track_id))
                if self._roll is not None:
                    self._roll.release((frame.source, track_id))
                if self.identity is not None:
                    self.identity.release(frame.source, track_id)
            faces.extend((i, track) for track in update.visible if track.hits >= self.config.min_hits)
        t_detect = time.perf_counter()
        persons = [""] * len(faces)
        if self.identity is not None:
            for i in sorted({i for i, _ in faces}):  # one call per frame: its new faces embedded in one batch
                rows = [j for j, (k, _) in enumerate(faces) if k == i]
                ids = self.identity.identify_frame(frames[i].source, frames[i].image,
                                                   [(faces[j][1].track_id, faces[j][1].box) for j in rows],
                                                   i in searched_frames, states[i].tracker.now)
                for j, person_id in zip(rows, ids):
                    persons[j] = person_id
        t_identify = time.perf_counter()

        # crops and scenes, resized straight into the (pinned) staging buffers
        if faces:
            face_pixels = self._face_staging.images(len(faces))
            for j, ((i, track), angle) in enumerate(zip(faces, self._crop_angles(frames, states, faces))):
                _resize_into(crop_face(frames[i].image, track.box, self.config.face_margin,
                                               self.config.face_square, self.config.face_shift, angle), face_pixels[j])
        due = [i for i, s in enumerate(states) if self.uses_scene and s.frames % self.config.scene_interval == 0]
        if due:
            scene_pixels = self._scene_staging.images(len(due))
            for j, i in enumerate(due):
                _resize_into(frames[i].image, scene_pixels[j])
        t_crop = time.perf_counter()

        # upload on the copy stream, encode faces and scenes on their own streams
        marks = {}
        model = self.model
        face_feats, face_done = self._encode(model.encode_faces, self._face_staging, len(faces), streams.face, "encode_face", marks)
        scene_feats, scene_done = self._encode(model.encode_scenes, self._scene_staging, len(due), streams.scene, "encode_scene", marks)
        streams.wait(face_done)
        streams.wait(scene_done)
        for feats in (face_feats, scene_feats):
            if feats is not None:
                streams.hand_over(feats)

        for j, i in enumerate(due):
            states[i].scene = scene_feats[j]
        for state in states:
            state.frames += 1

        results: list[list[EmotionEstimate]] = [[] for _ in frames]
        host = None
        if faces:
            keys = [(frames[i].source, track.track_id) for i, track in faces]
            written = {"face": face_feats}
            if self.uses_scene:
                written["scene"] = torch.stack([states[i].scene for i, _ in faces])
            self.buffers.write(keys, **written)
            marks["head"] = [streams.mark()]
            windows, mask, used = self.buffers.windows(keys)
            with autocast(self.device, self.config.precision):
                out = self.model.forward_window(
                    windows["face"], mask, windows.get("scene"), mask if self.uses_scene else None
                )
            probs = [torch.softmax(out.logits.float() / self.config.temperature, dim=-1)]
            if out.polarity_logits is not None:
                probs.append(torch.softmax(out.polarity_logits.float(), dim=-1))
            marks["head"].append(streams.mark())
            host = torch.cat(probs, dim=1).cpu().numpy()  # the one device->host sync per call
        elif self._streams.cuda:
            torch.cuda.current_stream(self.device).synchronize()  # timing events must be complete

        timings = {"detect": (t_detect - t_start) * 1e3, "crop": (t_crop - t_identify) * 1e3}
        if self.identity is not None:
            timings["identify"] = (t_identify - t_detect) * 1e3
        timings.update({stage: streams.elapsed_ms(a, b) for stage, (a, b) in marks.items()})
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        with self._stats_lock:
            self._frames += len(frames)
            self._searches += len(searched_frames)
            self._faces += len(faces)
            self._latency.add(timings)

        if host is not None:
            n_cls = out.logits.shape[1]
            for j, ((i, track), frames_used, person_id) in enumerate(zip(faces, used, persons)):
                frame = frames[i]
                results[i].append(
                    EmotionEstimate(
                        face_id=track.track_id,
                        box=track.box,
                        probabilities=self._smoother((frame.source, track.track_id), host[j, :n_cls],
                                                     states[i].tracker.now).astype(np.float32),
                        polarity_probabilities=host[j, n_cls:].astype(np.float32) if host.shape[1] > n_cls else None,
                        frames_used=frames_used,
                        model_id=self.model_id,
                        stamp_ns=frame.stamp_ns,
                        frame_id=frame.frame_id,
                        source=frame.source,
                        timings_ms=dict(timings),
                        person_id=person_id,
                    )
                )
        return results

    def _roll_estimator(self) -> TrackRolls | None:
        """O-Net for ``face_align``; without its weights (no facenet-pytorch) crops stay unturned, logged once."""
        try:
            return TrackRolls(RollEstimator(str(self.device)), ALIGN_REFRESH_S)
        except WeightsMissingError as err:
            log.warning("face_align is on but %s; face crops are not turned", err)
            return None

    def _crop_angles(self, frames: list[Frame], states: list, faces: list) -> list[float]:
        """Per face, the turn that levels its eyes (``config.face_align``), else 0."""
        if self._roll is None:
            return [0.0] * len(faces)
        angles = []
        for i, group in itertools.groupby(faces, key=lambda face: face[0]):  # faces come frame by frame
            tracks = [track for _, track in group]
            rolls = self._roll.rolls(frames[i].image, [(frames[i].source, t.track_id) for t in tracks],
                                     [t.box for t in tracks], states[i].tracker.now)
            angles += [crop_angle(roll, self.config.face_align_min_deg) for roll in rolls]
        return angles

    def _encode(self, encode, staging: Staging | None, n: int, stream, stage: str, marks: dict):
        """Upload n staged images, run ``encode`` on ``stream``; returns (features, done event)."""
        if n == 0:
            return None, None
        streams = self._streams
        pixels, ready = staging.upload(n)
        with streams.on(stream):
            streams.wait(ready, stream)
            streams.hand_over(pixels, stream)
            start = streams.mark(stream)
            with autocast(self.device, self.config.precision):
                feats = encode(pixels)
            marks[stage] = (start, streams.mark(stream))
            done = streams.signal(stream)
        return feats, done

    def _search_due(self, state: _Source, now: float) -> bool:
        """Whether this frame of ``state``'s camera gets a whole-frame search (class docstring)."""
        due = (state.follower is None or state.search_now or state.searched_at is None
               or now - state.searched_at >= self.config.detect_interval_s)
        if due:
            state.searched_at, state.search_now = now, False
        return due

    def _follow(self, rgb: np.ndarray, state: _Source, now: float) -> list[Detection]:
        """The tracked faces re-found near their predicted boxes; one not re-found brings the search forward."""
        found = state.follower.follow(rgb, state.tracker.predictions(now))
        state.search_now = any(d is None for d in found)
        return self._checked([d for d in found if d is not None], *rgb.shape[:2])

    def _keep_followed(self, rgb: np.ndarray, state: _Source, now: float, found: list[Detection]) -> list[Detection]:
        """A search's detections plus the followed faces it missed, re-found near their predicted
        boxes in one re-detector call. A search can miss a face the follower holds (a turned head
        whose score hovers at the threshold); without this that face would vanish until the next
        search, 0.5 s later. A face the re-detector cannot find either stays missed."""
        overlaps = self.config.iou_threshold
        missed = [(track_id, box) for track_id, box in state.tracker.predictions(now)
                  if all(box.iou(d.box) < overlaps for d in found)]
        if not missed:
            return found
        again = [d for d in state.follower.follow(rgb, missed)
                 if d is not None and all(d.box.iou(other.box) < overlaps for other in found)]
        return self._checked(found + again, *rgb.shape[:2])

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detections in frame pixels: finite, clipped to the frame, best ``max_faces`` by score."""
        height, width = rgb.shape[:2]
        scale = 1.0
        side = self.config.detect_max_side
        if side and max(height, width) > side:
            scale = side / max(height, width)
            small = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
        return self._checked(self.detector.detect(rgb), height, width, scale)

    def _checked(self, found: list[Detection], height: int, width: int, scale: float = 1.0) -> list[Detection]:
        """Finite detections divided by ``scale``, clipped to the frame, the best ``max_faces`` by score."""
        detections = []
        for det in found:
            b = det.box
            if not all(math.isfinite(v) for v in (b.x, b.y, b.w, b.h, det.score)):
                continue
            box = Box(float(b.x) / scale, float(b.y) / scale, float(b.w) / scale, float(b.h) / scale)
            box = box.clipped(width, height)
            if box.w >= 1 and box.h >= 1:
                detections.append(Detection(box, float(det.score)))
        detections.sort(key=lambda d: d.score, reverse=True)
        return detections[: self.config.max_faces]
