"""Which person a face track shows: the engine's identity component.

The engine calls ``identify`` for every reported face and ``release`` when a track ends. An
embedding is computed only

- when a track starts (its first reported frame): matched against the gallery, excluding the
  persons other faces of the same camera show right now (two faces in one frame are two
  people; another camera may show the same person, who then keeps one id);
- on a whole-frame search, at most every ``refresh_s`` seconds of camera time per track: a view
  close to the person joins their samples (turns and expressions), one unlike them does not (a
  track that jumped to another face must not teach the gallery a wrong face, nor merge two
  people); and a track that started as a new person and whose view, still close to its own
  samples, now also matches someone seen before is that person: the new id is merged into the
  old one, so a face first seen at an angle can still get its id back as it turns.

Between those, a track keeps its person id. So the ~75 ms embedding runs at most once per track
start and once per ``refresh_s``, never per frame (docs/persons.md has the measured cost).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from ..types import Box
from .gallery import PersonGallery

EXPIRE_EVERY_S = 60.0  # camera seconds between retention sweeps of an on-disk gallery


@dataclass
class _TrackIdentity:
    person_id: str
    embedded_at: float  # camera seconds
    new_person: bool  # the gallery entry was created by this track (may still turn out to be someone seen before)


class PersonIdentifier:
    """Thread-safe; ``embedder`` has ``embed(rgb, box) -> vector | None`` (``DlibFaceEmbedder``)."""

    def __init__(self, embedder, gallery: PersonGallery | None = None, refresh_s: float = 5.0):
        if not callable(getattr(embedder, "embed", None)):
            raise TypeError(f"embedder must have embed(rgb, box), got {type(embedder).__name__}")
        if refresh_s < 0 or not math.isfinite(refresh_s):
            raise ValueError(f"refresh_s must be a finite number >= 0, got {refresh_s}")
        self.embedder = embedder
        self.gallery = gallery if gallery is not None else PersonGallery()
        self.refresh_s = float(refresh_s)
        self.embeddings = 0  # computed so far (benchmarks, tests)
        self._tracks: dict[tuple[str, str], _TrackIdentity] = {}
        self._expired_at = -math.inf
        self._lock = threading.RLock()

    def identify(self, source: str, track_id: str, rgb: np.ndarray, box: Box, searched: bool, now: float) -> str:
        """The person id of this track in this frame ("" while no embedding could be made)."""
        key = (source, track_id)
        with self._lock:
            if searched and now - self._expired_at >= EXPIRE_EVERY_S:
                self._expired_at = now
                self.gallery.expire()
            state = self._tracks.get(key)
            if state is not None and not (searched and now - state.embedded_at >= self.refresh_s):
                return state.person_id
            embedding = self.embedder.embed(rgb, box)
            if embedding is None:
                return "" if state is None else state.person_id
            self.embeddings += 1
            busy = {s.person_id for k, s in self._tracks.items() if k[0] == source and k != key}
            if state is None:
                person_id, _ = self.gallery.match(embedding, exclude=busy)
                if person_id is None:
                    self._tracks[key] = _TrackIdentity(self.gallery.add(embedding), now, True)
                else:
                    self.gallery.update(person_id, embedding)
                    self._tracks[key] = _TrackIdentity(person_id, now, False)
                return self._tracks[key].person_id
            state.embedded_at = now
            if self.gallery.distance(state.person_id, embedding) > self.gallery.threshold:
                self.gallery.update(state.person_id)  # seen, but this view is not learnt
                return state.person_id
            if state.new_person:
                earlier, _ = self.gallery.match(embedding, exclude=busy | {state.person_id})
                if earlier is not None:
                    self.gallery.merge(state.person_id, earlier)
                    state.person_id, state.new_person = earlier, False
            self.gallery.update(state.person_id, embedding)
            return state.person_id

    def release(self, source: str, track_id: str) -> None:
        """The track ended: its person was last seen now."""
        with self._lock:
            state = self._tracks.pop((source, track_id), None)
            if state is not None:
                self.gallery.update(state.person_id)

    def reset(self, source: str | None = None) -> None:
        """Release every track of ``source`` (all sources with None)."""
        with self._lock:
            for key in [k for k in self._tracks if source is None or k[0] == source]:
                self.release(*key)

    def forget(self, person_id: str) -> bool:
        """Erase one person (memory and file); a face of theirs in view is enrolled afresh, under a new id."""
        with self._lock:
            for key in [k for k, s in self._tracks.items() if s.person_id == person_id]:
                del self._tracks[key]
            return self.gallery.forget(person_id)

    def forget_all(self) -> int:
        """Erase everyone; returns how many persons were known."""
        with self._lock:
            self._tracks.clear()
            return self.gallery.forget_all()

    def close(self) -> None:
        """Write an on-disk gallery's latest sightings (no-op in memory)."""
        with self._lock:
            self.reset()
            self.gallery.save()
