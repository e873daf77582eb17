"""The persons seen: a few face embeddings each, matched by Euclidean distance. Privacy first.

By default the gallery lives in memory and ends with the process. With ``path`` set (opt-in) it
is kept in one ``.npz`` file of embeddings and times only (never an image), written atomically,
and a person unseen for longer than ``retention_s`` (wall-clock seconds) is dropped: on loading,
on saving and by ``expire``. ``forget`` / ``forget_all`` remove persons from memory and from the
file at once.

Person ids are ``person_<n>`` (REP-155 ids: valid topic name tokens), never reused by one
gallery: the counter is saved with the file, so a forgotten person's id is not given to someone
else.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_THRESHOLD = 0.5  # dlib suggests 0.6 (LFW); stricter here: merging two people is worse than splitting one (docs/persons.md)
DEFAULT_SAMPLES = 8  # embeddings kept per person (varied poses and expressions), oldest dropped first
FILE_VERSION = 1
PERSON_ID = re.compile(r"person_([1-9][0-9]*)")


class GalleryError(ValueError):
    """A gallery file that cannot be read (not ours, damaged, another version)."""


@dataclass
class Person:
    person_id: str
    embeddings: list[np.ndarray] = field(default_factory=list)
    first_seen: float = 0.0  # wall-clock seconds (time.time())
    last_seen: float = 0.0


class PersonGallery:
    """Thread-safe: the engine matches on its thread while a ROS service or the CLI forgets.

    ``threshold``: largest distance of an embedding to a person's nearest sample that still
    counts as that person. ``samples``: embeddings kept per person. ``path``: opt-in file (None:
    memory only). ``retention_s``: how long an unseen person is kept in the file (required with a
    path: there is no "forever"; None: the retention saved in an existing file, as the CLI opens
    it). ``clock``: wall-clock seconds, replaceable in tests.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, samples: int = DEFAULT_SAMPLES,
                 path: str | Path | None = None, retention_s: float | None = None, clock=time.time):
        if not 0 < threshold < 2:
            raise ValueError(f"threshold must be in (0, 2), got {threshold}")
        if int(samples) < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if path is not None and retention_s is None and Path(path).expanduser().is_file():
            retention_s = _saved_retention(Path(path).expanduser())
        if path is not None and (retention_s is None or not math.isfinite(retention_s) or retention_s <= 0):
            raise ValueError(f"a gallery on disk needs a finite retention_s > 0, got {retention_s}")
        self.threshold = float(threshold)
        self.samples = int(samples)
        self.path = Path(path).expanduser() if path is not None else None
        self.retention_s = retention_s
        self.clock = clock
        self._persons: dict[str, Person] = {}
        self._counter = 0
        self._saved_at = -math.inf
        self._lock = threading.RLock()
        if self.path is not None and self.path.exists():
            self._load()
            self.expire()

    # ------------------------------------------------------------------ matching
    def match(self, embedding: np.ndarray, exclude=()) -> tuple[str | None, float]:
        """(person id, distance) of the nearest person within the threshold, skipping ``exclude``
        (persons another face shows right now); (None, nearest distance) when nobody is that close."""
        embedding = self._checked(embedding)
        best, best_d = None, math.inf
        with self._lock:
            for person in self._persons.values():
                if person.person_id in exclude or not person.embeddings:
                    continue
                d = float(np.min(np.linalg.norm(np.stack(person.embeddings) - embedding, axis=1)))
                if d < best_d:
                    best, best_d = person.person_id, d
        return (best, best_d) if best_d <= self.threshold else (None, best_d)

    def distance(self, person_id: str, embedding: np.ndarray) -> float:
        """Distance of ``embedding`` to the person's nearest sample (inf for an unknown id)."""
        embedding = self._checked(embedding)
        with self._lock:
            person = self._persons.get(person_id)
            if person is None or not person.embeddings:
                return math.inf
            return float(np.min(np.linalg.norm(np.stack(person.embeddings) - embedding, axis=1)))

    def add(self, embedding: np.ndarray) -> str:
        """A new person with this embedding; returns their id."""
        embedding = self._checked(embedding)
        with self._lock:
            self._counter += 1
            now = self.clock()
            person = Person(f"person_{self._counter}", [embedding], now, now)
            self._persons[person.person_id] = person
            self._dirty()
            return person.person_id

    def update(self, person_id: str, embedding: np.ndarray | None = None) -> None:
        """The person was seen now; ``embedding`` (if given) joins their samples."""
        with self._lock:
            person = self._persons.get(person_id)
            if person is None:
                return
            person.last_seen = self.clock()
            if embedding is not None:
                person.embeddings.append(self._checked(embedding))
                del person.embeddings[:-self.samples]
            self._dirty()

    def merge(self, source_id: str, target_id: str) -> None:
        """``source_id`` turned out to be ``target_id``: its samples go to the target, its id away."""
        with self._lock:
            source, target = self._persons.get(source_id), self._persons.get(target_id)
            if source is None or target is None or source is target:
                return
            target.embeddings = (target.embeddings + source.embeddings)[-self.samples:]
            target.last_seen = max(target.last_seen, source.last_seen)
            del self._persons[source_id]
            self._dirty()

    # ------------------------------------------------------------------ privacy controls
    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._persons, key=lambda p: int(PERSON_ID.fullmatch(p)[1]))

    def last_seen(self, person_id: str) -> float | None:
        with self._lock:
            person = self._persons.get(person_id)
            return None if person is None else person.last_seen

    def forget(self, person_id: str) -> bool:
        """Remove one person from memory and the file; False if unknown."""
        with self._lock:
            if self._persons.pop(person_id, None) is None:
                return False
            self._dirty(force=True)
            return True

    def forget_all(self) -> int:
        """Remove everyone from memory and the file; returns how many."""
        with self._lock:
            n = len(self._persons)
            self._persons.clear()
            self._dirty(force=True)
            return n

    def expire(self) -> list[str]:
        """Drop persons unseen for longer than ``retention_s`` (no-op without one); their ids."""
        if self.retention_s is None:
            return []
        with self._lock:
            now = self.clock()
            gone = [p.person_id for p in self._persons.values() if now - p.last_seen > self.retention_s]
            for person_id in gone:
                del self._persons[person_id]
            if gone:
                self._dirty(force=True)
            return gone

    def save(self) -> None:
        """Write the file now (atomically: a crash leaves the old file or the new one)."""
        if self.path is None:
            return
        with self._lock:
            persons = list(self._persons.values())
            arrays = {
                "version": np.array(FILE_VERSION),
                "counter": np.array(self._counter),
                "retention_s": np.array(float(self.retention_s)),
                "ids": np.array([p.person_id for p in persons], dtype=str),
                "times": np.array([[p.first_seen, p.last_seen] for p in persons], np.float64).reshape(-1, 2),
                "counts": np.array([len(p.embeddings) for p in persons], np.int64),
                "embeddings": (np.concatenate([np.stack(p.embeddings) for p in persons]) if persons
                               else np.zeros((0, 128), np.float32)),
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **arrays)
                os.chmod(tmp, 0o600)  # biometric data: the owner only
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._saved_at = self.clock()

    # ------------------------------------------------------------------ internals
    SAVE_EVERY_S = 10.0  # sightings are written at most this often; forgetting is written at once

    def _dirty(self, force: bool = False) -> None:
        if self.path is None:
            return
        if force or self.clock() - self._saved_at >= self.SAVE_EVERY_S:
            self.save()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if int(data["version"]) != FILE_VERSION:
                    raise GalleryError(f"{self.path}: gallery version {int(data['version'])}, expected {FILE_VERSION}")
                ids, times, counts, embeddings = data["ids"], data["times"], data["counts"], data["embeddings"]
                counter = int(data["counter"])
        except (OSError, KeyError, ValueError) as err:
            if isinstance(err, GalleryError):
                raise
            raise GalleryError(f"{self.path} is not a person gallery ({type(err).__name__}: {err})") from None
        if not (len(ids) == len(times) == len(counts)) or int(counts.sum()) != len(embeddings):
            raise GalleryError(f"{self.path}: inconsistent gallery ({len(ids)} ids, {len(embeddings)} embeddings)")
        bad = [str(p) for p in ids if not PERSON_ID.fullmatch(str(p))]
        if bad or embeddings.ndim != 2:
            raise GalleryError(f"{self.path}: not a person gallery (ids {bad[:3]}, embeddings {embeddings.shape})")
        start = 0
        for person_id, (first, last), count in zip(ids, times, counts):
            rows = [np.asarray(e, np.float32) for e in embeddings[start:start + int(count)]]
            start += int(count)
            self._persons[str(person_id)] = Person(str(person_id), rows, float(first), float(last))
        self._counter = max([counter, *(int(PERSON_ID.fullmatch(p)[1]) for p in self._persons)])

    @staticmethod
    def _checked(embedding) -> np.ndarray:
        embedding = np.asarray(embedding, np.float32).reshape(-1)
        if embedding.size == 0 or not np.isfinite(embedding).all():
            raise ValueError(f"an embedding must be a finite non-empty vector, got shape {embedding.shape}")
        return embedding


def _saved_retention(path: Path) -> float:
    try:
        with np.load(path, allow_pickle=False) as data:
            return float(data["retention_s"])
    except (OSError, KeyError, ValueError) as err:
        raise GalleryError(f"{path} is not a person gallery ({type(err).__name__}: {err})") from None


def forget_persons(target, person_id: str = "") -> tuple[bool, int, str]:
    """(success, how many erased, message) for the ROS service and the CLI: ``person_id`` alone,
    or everyone when it is empty. ``target``: a ``PersonGallery`` or ``PersonIdentifier``."""
    if person_id:
        if target.forget(person_id):
            return True, 1, f"erased {person_id}"
        return False, 0, f"no person {person_id!r} is known"
    n = target.forget_all()
    return True, n, f"erased all {n} persons"
