"""Which person a face track shows: the engine's identity component.

The engine calls ``identify`` for every reported face and ``release`` when a track ends. An
embedding is computed only

- when a track starts (its first reported frame): matched against the gallery, excluding the
  persons other faces of the same camera show right now (two faces in one frame are two
  people; another camera may show the same person, who then keeps one id);
- while the track enrols: at whole-frame searches at least ``enrol_every_s`` apart, until it has
  ``enrol_views`` views. One view is a weak witness (the first frame of an appearance is often
  a turn, a blur, a face half in the picture); a few views a moment apart give the person
  several looks to be recognised by when they come back, and give a track that started as a
  new person several chances to be recognised as someone seen before;
- after that, on a whole-frame search at most every ``refresh_s`` seconds of camera time.

Each view is learnt (joins the person's samples) when it is close to the track's person: while
the track enrols, within the model's own same-identity radius ``same_track`` of the person's
samples or of the track's own earlier views (the tracker's continuity vouches for them), after
that within the gallery's stricter threshold. A view unlike the person is not learnt: a track
that jumped to another face must not teach the gallery a wrong face, nor merge two people.

A track that started as a new person and whose view now matches someone seen before (within
the threshold) is that person from now on. Its provisional id is merged into theirs when that
view also agrees with the track's earlier views (one face all along). Otherwise views of
doubtful origin never join a person seen before: while the track enrols, its provisional id and
few views are dropped (a poor first view, or a tracker jump); after that they stay a person of
their own (the tracker jumped away from someone enrolled).

Between those, a track keeps its person id. So the embedding runs a few times per track start
and once per ``refresh_s``, never per frame (docs/persons.md has the measured cost).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from ..types import Box
from .gallery import PersonGallery

EXPIRE_EVERY_S = 60.0  # camera seconds between retention sweeps of an on-disk gallery
SAME_TRACK = 0.6  # dlib's own same-identity radius (trained so, dlib-models README)


@dataclass
class _TrackIdentity:
    person_id: str
    embedded_at: float  # camera seconds
    views: list  # the track's embeddings while it enrols (at most enrol_views)
    new_person: bool  # the gallery entry was created by this track (may still turn out to be someone seen before)


class PersonIdentifier:
    """Thread-safe; ``embedder`` has ``embed(rgb, box) -> vector | None`` and, optionally,
    ``embed_many(rgb, boxes)`` (``DlibFaceEmbedder`` has both)."""

    def __init__(self, embedder, gallery: PersonGallery | None = None, refresh_s: float = 5.0,
                 enrol_views: int = 4, enrol_every_s: float = 0.25, same_track: float = SAME_TRACK):
        if not callable(getattr(embedder, "embed", None)):
            raise TypeError(f"embedder must have embed(rgb, box), got {type(embedder).__name__}")
        for name, value in (("refresh_s", refresh_s), ("enrol_every_s", enrol_every_s)):
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if int(enrol_views) < 1:
            raise ValueError(f"enrol_views must be >= 1, got {enrol_views}")
        self.embedder = embedder
        self.gallery = gallery if gallery is not None else PersonGallery()
        if not self.gallery.threshold <= same_track < 2:
            raise ValueError(f"same_track must be in [threshold {self.gallery.threshold}, 2), got {same_track}")
        self.refresh_s = float(refresh_s)
        self.enrol_views = int(enrol_views)
        self.enrol_every_s = float(enrol_every_s)
        self.same_track = float(same_track)
        self.embeddings = 0  # computed so far (benchmarks, tests)
        self._tracks: dict[tuple[str, str], _TrackIdentity] = {}
        self._expired_at = -math.inf
        self._lock = threading.RLock()

    def identify(self, source: str, track_id: str, rgb: np.ndarray, box: Box, searched: bool, now: float) -> str:
        """The person id of this track in this frame ("" while no embedding could be made)."""
        return self.identify_frame(source, rgb, [(track_id, box)], searched, now)[0]

    def identify_frame(self, source: str, rgb: np.ndarray, faces: list[tuple[str, Box]], searched: bool,
                       now: float) -> list[str]:
        """``identify`` of each (track id, box) of one frame, in order; the faces due an embedding
        are embedded together (one forward pass where the embedder has ``embed_many``)."""
        with self._lock:
            if searched and now - self._expired_at >= EXPIRE_EVERY_S:
                self._expired_at = now
                self.gallery.expire()
            due = [k for k, (track_id, _) in enumerate(faces) if self._embedding_due((source, track_id), searched, now)]
            embeddings = dict(zip(due, self._embed(rgb, [faces[k][1] for k in due])))
            return [self._identify((source, track_id), embeddings[k], now) if k in embeddings
                    else self._tracks[(source, track_id)].person_id for k, (track_id, _) in enumerate(faces)]

    def _embedding_due(self, key: tuple[str, str], searched: bool, now: float) -> bool:
        state = self._tracks.get(key)
        return state is None or (searched and now - state.embedded_at >= self._due(state))

    def _embed(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray | None]:
        if not boxes:
            return []
        embed_many = getattr(self.embedder, "embed_many", None)
        return list(embed_many(rgb, boxes)) if callable(embed_many) else [self.embedder.embed(rgb, b) for b in boxes]

    def _identify(self, key: tuple[str, str], embedding: np.ndarray | None, now: float) -> str:
        """The track's person id, given its new view (None: no embedding could be made)."""
        state = self._tracks.get(key)
        if embedding is None:
            return "" if state is None else state.person_id
        self.embeddings += 1
        source = key[0]
        busy = {s.person_id for k, s in self._tracks.items() if k[0] == source and k != key}
        if state is None:
            person_id, _ = self.gallery.match(embedding, exclude=busy)
            if person_id is None:
                self._tracks[key] = _TrackIdentity(self.gallery.add(embedding), now, [embedding], True)
            else:
                self.gallery.update(person_id, embedding)
                self._tracks[key] = _TrackIdentity(person_id, now, [embedding], False)
            return self._tracks[key].person_id
        state.embedded_at = now
        enrolling = len(state.views) < self.enrol_views
        learnable = self._learnable(state, embedding, enrolling)
        if enrolling:
            state.views.append(embedding)
        if state.new_person:
            earlier, _ = self.gallery.match(embedding, exclude=busy | {state.person_id})
            if earlier is not None:
                if learnable:  # one face all along: the track's views go to the earlier person
                    self.gallery.merge(state.person_id, earlier)
                    self._rename(state.person_id, earlier)
                elif enrolling:  # a poor first view, or a jump: its few views are dropped
                    self.gallery.forget(state.person_id)
                    self._rename(state.person_id, earlier)
                else:  # an enrolled person, and the tracker jumped to someone seen before
                    self.gallery.update(state.person_id)
                    state.person_id, state.new_person = earlier, False
                learnable = True
        if learnable:
            self.gallery.update(state.person_id, embedding)
        else:
            self.gallery.update(state.person_id)  # seen, but this view is not learnt
        return state.person_id

    def _rename(self, old: str, new: str) -> None:
        """Tracks (of any camera) that showed ``old`` show ``new``, a person seen before."""
        for state in self._tracks.values():
            if state.person_id == old:
                state.person_id, state.new_person = new, False

    def _due(self, state: _TrackIdentity) -> float:
        """Camera seconds after its last embedding that a track is embedded again."""
        return self.enrol_every_s if len(state.views) < self.enrol_views else self.refresh_s

    def _learnable(self, state: _TrackIdentity, embedding: np.ndarray, enrolling: bool) -> bool:
        """Whether a new view of the track may join its person's samples (see the module doc)."""
        near = self.gallery.distance(state.person_id, embedding)
        if not enrolling:
            return near <= self.gallery.threshold
        return min(near, *(float(np.linalg.norm(v - embedding)) for v in state.views)) <= self.same_track

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
