"""Persons across absences: the gallery (matching, privacy controls, the opt-in file), the
engine's identity component, and dlib's real face-recognition model on real photos."""
from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.persons import GalleryError, PersonGallery, PersonIdentifier
from emotion_perception.types import Box, Frame

from test_engine import ConvModel, ScriptedDetector


def unit(*values) -> np.ndarray:
    v = np.zeros(8, np.float32)
    v[: len(values)] = values
    return v


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# ------------------------------------------------------------------ gallery

def test_match_takes_the_nearest_sample_within_the_threshold():
    g = PersonGallery(threshold=0.5)
    a = g.add(unit(1.0))
    b = g.add(unit(0.0, 1.0))
    g.update(a, unit(1.0, 0.0, 0.3))  # a second view of a
    # distance to a's nearest sample: |(1,0,0.6)-(1,0,0.3)| = 0.3; to b: sqrt(1+1+0.36)
    assert g.match(unit(1.0, 0.0, 0.6)) == (a, pytest.approx(0.3))
    person, d = g.match(unit(0.6, 0.6))  # 0.4^2 + 0.6^2 = 0.52 -> 0.721 from both
    assert person is None and d == pytest.approx(math.sqrt(0.52))
    assert g.match(unit(0.0, 0.9)) == (b, pytest.approx(0.1))
    assert g.match(unit(0.0, 0.9), exclude={b})[0] is None  # b is someone else in this frame


def test_ids_are_rep155_tokens_and_never_reused():
    g = PersonGallery()
    first = g.add(unit(1.0))
    assert first == "person_1"
    assert g.forget(first) and not g.forget(first)
    assert g.add(unit(1.0)) == "person_2"  # a forgotten id is not given to someone else
    assert g.forget_all() == 1 and g.ids() == []


def test_samples_are_capped_oldest_first():
    g = PersonGallery(samples=2, threshold=0.2)
    p = g.add(unit(1.0))
    g.update(p, unit(0.0, 1.0))
    g.update(p, unit(0.0, 0.0, 1.0))
    assert g.match(unit(1.0))[0] is None  # the first view was dropped
    assert g.match(unit(0.0, 1.0))[0] == p


def test_merge_moves_the_samples_and_drops_the_id():
    g = PersonGallery(threshold=0.2)
    old, new = g.add(unit(1.0)), g.add(unit(0.0, 1.0))
    g.merge(new, old)
    assert g.ids() == [old]
    assert g.match(unit(0.0, 1.0))[0] == old


def test_bad_settings_and_embeddings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="retention_s"):
        PersonGallery(path=tmp_path / "g.npz")  # no "forever" on disk
    with pytest.raises(ValueError, match="threshold"):
        PersonGallery(threshold=0)
    with pytest.raises(ValueError, match="finite"):
        PersonGallery().add(np.array([np.nan, 1.0]))


def test_memory_gallery_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = PersonGallery()
    g.update(g.add(unit(1.0)), unit(0.9))
    g.save()
    assert list(tmp_path.iterdir()) == []


def test_file_holds_embeddings_and_times_only_owner_readable_and_survives_a_restart(tmp_path):
    path = tmp_path / "persons" / "gallery.npz"
    clock = Clock()
    g = PersonGallery(path=path, retention_s=3600, clock=clock)
    a = g.add(unit(1.0))
    b = g.add(unit(0.0, 1.0))
    g.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with np.load(path) as data:
        assert sorted(data.files) == ["counter", "counts", "embeddings", "ids", "retention_s", "times", "version"]
        assert data["embeddings"].shape == (2, 8) and data["embeddings"].dtype == np.float32
        assert list(data["ids"]) == [a, b]
    again = PersonGallery(path=path, retention_s=3600, clock=clock)
    assert again.match(unit(1.0))[0] == a
    assert again.add(unit(0.0, 0.0, 1.0)) == "person_3"


def test_retention_drops_persons_unseen_for_longer_on_load_and_sweep(tmp_path):
    path = tmp_path / "g.npz"
    clock = Clock(0.0)
    g = PersonGallery(path=path, retention_s=100, clock=clock)
    old = g.add(unit(1.0))
    clock.t = 60.0
    recent = g.add(unit(0.0, 1.0))
    g.save()
    clock.t = 150.0  # old: unseen for 150 s > 100; recent: 90 s
    assert PersonGallery(path=path, retention_s=100, clock=clock).ids() == [recent]
    with np.load(path) as data:  # the expired one is gone from the file too, not only from memory
        assert list(data["ids"]) == [recent]
    clock.t = 161.0
    assert g.expire() == [old, recent] and g.ids() == []


def test_forget_is_written_to_the_file_at_once(tmp_path):
    path = tmp_path / "g.npz"
    g = PersonGallery(path=path, retention_s=100, clock=Clock())
    a, b = g.add(unit(1.0)), g.add(unit(0.0, 1.0))
    g.save()
    g.forget(a)
    assert PersonGallery(path=path, retention_s=100, clock=Clock()).ids() == [b]
    g.forget_all()
    assert PersonGallery(path=path, retention_s=100, clock=Clock()).ids() == []


def test_a_file_that_is_not_a_gallery_is_one_clear_error(tmp_path):
    path = tmp_path / "g.npz"
    path.write_bytes(b"not a gallery")
    with pytest.raises(GalleryError, match="not a person gallery"):
        PersonGallery(path=path, retention_s=10)
    np.savez(path, version=np.array(1), counter=np.array(1), ids=np.array(["../etc"]),
             times=np.zeros((1, 2)), counts=np.array([1]), embeddings=np.zeros((1, 8), np.float32))
    with pytest.raises(GalleryError):
        PersonGallery(path=path, retention_s=10)


# ------------------------------------------------------------------ identity component

class PixelEmbedder:
    """Test double: the face's look is the grey value at the box's centre, its embedding
    ``views[value]`` (default: one-hot over 8 values, so different values are sqrt(2) apart)."""

    def __init__(self, views=None):
        self.calls = 0
        self.views = views or {}

    def embed(self, rgb, box):
        self.calls += 1
        value = int(rgb[int(box.y + box.h / 2), int(box.x + box.w / 2), 0])
        return self.views.get(value, unit(*([0.0] * (value % 8)), 1.0))


def scene(*faces, size=(100, 200)):
    """An image with a square of grey value v at each (x, v) — a face of person v at x."""
    image = np.zeros((*size, 3), np.uint8)
    for x, value in faces:
        image[20:60, x:x + 40] = value
    return image


def test_identify_embeds_at_track_start_then_enrols_then_refreshes_only_at_searches():
    """Start: one embedding. Enrolment: at searches at least 0.5 s apart until the track has 3
    views. Then at searches at least refresh_s apart. Followed frames never embed."""
    embedder = PixelEmbedder()
    ids = PersonIdentifier(embedder, refresh_s=2.0, enrol_views=3, enrol_every_s=0.5)
    box = Box(10, 20, 40, 40)
    img = scene((10, 3))
    assert ids.identify("", "face_1", img, box, searched=False, now=0.0) == "person_1"
    for t in (0.5, 1.0, 2.5, 3.0):  # followed frames: no embedding, however long
        assert ids.identify("", "face_1", img, box, searched=False, now=t) == "person_1"
    assert embedder.calls == 1
    calls = []
    for t in (3.2, 3.4, 3.7, 3.9, 4.2, 5.0, 6.1, 6.3, 8.3):  # searches
        ids.identify("", "face_1", img, box, searched=True, now=t)
        calls.append(embedder.calls)
    # 3.2: view 2; 3.4: only 0.2 s later; 3.7: view 3, enrolled; then every refresh_s (2 s) after
    # the last view: 3.9, 4.2, 5.0 too soon, 6.1 (2.4 s), 6.3 too soon, 8.3 (2.2 s)
    assert calls == [2, 2, 3, 3, 3, 3, 4, 4, 5]
    assert ids.gallery.ids() == ["person_1"]


def test_identify_frame_embeds_the_due_faces_of_a_frame_in_one_batch():
    class BatchEmbedder(PixelEmbedder):
        def __init__(self):
            super().__init__()
            self.batches = []

        def embed_many(self, rgb, boxes):
            self.batches.append(len(boxes))
            return [self.embed(rgb, b) for b in boxes]

    embedder = BatchEmbedder()
    ids = PersonIdentifier(embedder, enrol_views=2, enrol_every_s=0.5)
    img = scene((10, 3), (100, 4), (150, 5))
    two = [("face_1", Box(10, 20, 40, 40)), ("face_2", Box(100, 20, 40, 40))]
    assert ids.identify_frame("", img, two, True, 0.0) == ["person_1", "person_2"]
    assert ids.identify_frame("", img, two, False, 0.1) == ["person_1", "person_2"]  # followed: none due
    # a search: the two enrol (0.6 s on), a third face starts; all three in one batch, in order
    three = two + [("face_3", Box(150, 20, 40, 40))]
    assert ids.identify_frame("", img, three, True, 0.6) == ["person_1", "person_2", "person_3"]
    assert embedder.batches == [2, 3]
    assert ids.identify_frame("", img, three, True, 0.8) == ["person_1", "person_2", "person_3"]  # too soon
    assert ids.identify_frame("", img, three, True, 1.1) == ["person_1", "person_2", "person_3"]
    assert embedder.batches == [2, 3, 1]  # only face_3 enrols (face_1/2 have their 2 views)
    assert embedder.calls == 6


def test_two_faces_of_one_frame_are_two_people_even_if_they_look_alike():
    ids = PersonIdentifier(PixelEmbedder())
    img = scene((10, 3), (100, 3))
    a = ids.identify("", "face_1", img, Box(10, 20, 40, 40), True, 0.0)
    b = ids.identify("", "face_2", img, Box(100, 20, 40, 40), True, 0.0)
    assert a != b


def test_another_camera_may_see_the_same_person():
    ids = PersonIdentifier(PixelEmbedder())
    img = scene((10, 3))
    a = ids.identify("cam_a", "face_1", img, Box(10, 20, 40, 40), True, 0.0)
    assert ids.identify("cam_b", "face_1", img, Box(10, 20, 40, 40), True, 0.0) == a


def test_a_returning_person_gets_their_id_back_and_a_new_one_does_not():
    ids = PersonIdentifier(PixelEmbedder())
    a = ids.identify("", "face_1", scene((10, 3)), Box(10, 20, 40, 40), True, 0.0)
    ids.release("", "face_1")
    b = ids.identify("", "face_2", scene((10, 5)), Box(10, 20, 40, 40), True, 10.0)
    ids.release("", "face_2")
    assert b != a
    assert ids.identify("", "face_3", scene((10, 3)), Box(10, 20, 40, 40), True, 50.0) == a


def test_a_new_track_that_turns_out_to_be_someone_seen_before_is_merged_into_them():
    """Person A seen frontally (1); later a track starts at an angle (2: 0.89 from A, a new id);
    the face turns (3: 0.47 from the angle, 0.45 from A): the track takes A's id, the new id goes."""
    views = {1: unit(1.0), 2: unit(0.6, 0.8), 3: unit(0.9, math.sqrt(1 - 0.81))}
    ids = PersonIdentifier(PixelEmbedder(views), refresh_s=1.0)
    box = Box(10, 20, 40, 40)
    a = ids.identify("", "face_1", scene((10, 1)), box, True, 0.0)
    ids.release("", "face_1")
    angle = ids.identify("", "face_2", scene((10, 2)), box, True, 5.0)
    assert angle != a
    assert ids.identify("", "face_2", scene((10, 3)), box, False, 6.5) == angle  # not a search: no look
    assert ids.identify("", "face_2", scene((10, 3)), box, True, 6.5) == a
    assert ids.gallery.ids() == [a]


def test_a_new_track_whose_views_disagree_takes_the_earlier_id_without_its_doubtful_first_view():
    """Person A seen (1). A track starts on a view 0.9 from A (2: a new id), then shows A (1
    again): 0.9 from its own first view too, so that first view may be a poor one or another face
    (a tracker jump). The track is A from now on; the provisional id is dropped, not merged, so
    A's samples never get the doubtful view (a later face like view 2 is a new person, not A)."""
    views = {1: unit(1.0), 2: unit(1 - 0.9 ** 2 / 2, math.sqrt(1 - (1 - 0.9 ** 2 / 2) ** 2))}
    box = Box(10, 20, 40, 40)
    ids = PersonIdentifier(PixelEmbedder(views), enrol_every_s=0.5)
    a = ids.identify("", "face_1", scene((10, 1)), box, True, 0.0)
    ids.release("", "face_1")
    provisional = ids.identify("", "face_2", scene((10, 2)), box, True, 5.0)
    assert provisional != a
    assert ids.identify("", "face_2", scene((10, 1)), box, True, 5.5) == a
    assert ids.gallery.ids() == [a]
    assert len(ids.gallery._persons[a].embeddings) == 2  # A's first view and the track's view of A
    assert ids.identify("", "face_2", scene((10, 1)), box, False, 5.6) == a  # and keeps it
    ids.release("", "face_2")
    assert ids.identify("", "face_3", scene((10, 2)), box, True, 20.0) not in (a, provisional)


def test_a_view_unlike_the_tracks_person_is_not_learnt():
    """A track that jumped to another face must not teach the gallery that face."""
    ids = PersonIdentifier(PixelEmbedder(), refresh_s=1.0, enrol_views=1)  # enrolled at its first view
    box = Box(10, 20, 40, 40)
    a = ids.identify("", "face_1", scene((10, 3)), box, True, 0.0)
    b = ids.identify("", "face_9", scene((100, 4)), Box(100, 20, 40, 40), True, 0.0)  # person 4, elsewhere
    ids.release("", "face_9")
    # the new person's track now shows b: it is b from now on, a stays a person of its own...
    assert ids.identify("", "face_1", scene((10, 4)), box, True, 2.0) == b
    assert ids.identify("", "face_1", scene((10, 4)), box, False, 2.1) == b
    assert ids.gallery.ids() == [a, b]
    ids.release("", "face_1")
    assert ids.identify("", "face_2", scene((10, 3)), box, True, 9.0) == a  # ...with its own face
    ids.release("", "face_2")
    assert ids.identify("", "face_3", scene((10, 4)), box, True, 20.0) == b  # and a did not learn 4
    assert len(ids.gallery._persons[a].embeddings) == 2  # 3 at 0 s and at 9 s


def test_enrolment_learns_the_tracks_views_even_when_its_first_view_was_off():
    """The first frame of an appearance is a poor view (0.62 from the person's usual look, beyond
    the 0.5 match threshold). The next view is 0.68 from it, the one after is the usual look:
    0.62 from the first view, but 0.3 from the second. Enrolment learns the usual look, since it
    is close to the track's own earlier views (within dlib's 0.6), although it is not close to the
    one sample the person had; so the person, back later with their usual look, gets their id
    back. With one view per track (no enrolment) they would not."""
    usual = unit(1.0)
    views = {1: unit(1 - 0.62 ** 2 / 2, 0.0, math.sqrt(1 - (1 - 0.62 ** 2 / 2) ** 2)),  # 0.62 from usual
             2: unit(1 - 0.3 ** 2 / 2, math.sqrt(1 - (1 - 0.3 ** 2 / 2) ** 2)),  # 0.3 from usual, 0.68 from 1
             3: usual}
    assert np.linalg.norm(views[1] - views[2]) > 0.6 < np.linalg.norm(views[1] - usual)
    box = Box(10, 20, 40, 40)
    for enrol_views, returns in ((1, False), (3, True)):
        ids = PersonIdentifier(PixelEmbedder(views), enrol_views=enrol_views, enrol_every_s=0.5)
        a = ids.identify("", "face_1", scene((10, 1)), box, True, 0.0)
        ids.identify("", "face_1", scene((10, 2)), box, True, 0.5)
        ids.identify("", "face_1", scene((10, 3)), box, True, 1.0)
        ids.release("", "face_1")
        back = ids.identify("", "face_2", scene((10, 3)), box, True, 30.0)
        assert (back == a) is returns, enrol_views


def test_enrolment_does_not_learn_a_view_unlike_the_track_and_after_it_only_close_views():
    """Enrolling: a view 0.55 from the track's views is learnt (within same_track 0.6), one 0.7
    away is not (the tracker may have jumped). Enrolled: 0.55 is no longer learnt (threshold 0.5)."""
    views = {1: unit(1.0), 2: unit(1 - 0.55 ** 2 / 2, math.sqrt(1 - (1 - 0.55 ** 2 / 2) ** 2)),
             4: unit(1 - 0.7 ** 2 / 2, 0.0, math.sqrt(1 - (1 - 0.7 ** 2 / 2) ** 2))}
    box = Box(10, 20, 40, 40)
    ids = PersonIdentifier(PixelEmbedder(views), refresh_s=1.0, enrol_views=3, enrol_every_s=0.5)
    a = ids.identify("", "face_1", scene((10, 1)), box, True, 0.0)
    ids.identify("", "face_1", scene((10, 4)), box, True, 0.5)  # 0.7 away: not learnt
    assert len(ids.gallery._persons[a].embeddings) == 1
    ids.identify("", "face_1", scene((10, 2)), box, True, 1.0)  # 0.55 away: learnt while enrolling
    assert len(ids.gallery._persons[a].embeddings) == 2
    ids.identify("", "face_2", scene((10, 1)), box, True, 0.0)  # another track, enrolled at once
    ids2 = PersonIdentifier(PixelEmbedder(views), refresh_s=1.0, enrol_views=1)
    b = ids2.identify("", "face_1", scene((10, 1)), box, True, 0.0)
    ids2.identify("", "face_1", scene((10, 2)), box, True, 1.5)  # enrolled: 0.55 > 0.5, not learnt
    assert len(ids2.gallery._persons[b].embeddings) == 1


def test_forget_while_in_view_enrols_them_afresh_under_a_new_id():
    ids = PersonIdentifier(PixelEmbedder())
    img, box = scene((10, 3)), Box(10, 20, 40, 40)
    a = ids.identify("", "face_1", img, box, False, 0.0)
    assert ids.forget(a)
    b = ids.identify("", "face_1", img, box, False, 0.1)
    assert b != a and ids.gallery.ids() == [b]
    assert ids.forget_all() == 1 and ids.gallery.ids() == []


def test_retention_sweeps_run_at_searches_and_close_writes_the_latest_sightings(tmp_path):
    path = tmp_path / "g.npz"
    clock = Clock(0.0)
    ids = PersonIdentifier(PixelEmbedder(), PersonGallery(path=path, retention_s=100, clock=clock))
    box = Box(10, 20, 40, 40)
    a = ids.identify("", "face_1", scene((10, 3)), box, True, 0.0)  # first write: at once
    ids.release("", "face_1")
    clock.t = 5.0
    b = ids.identify("", "face_2", scene((10, 4)), box, False, 1.0)  # 5 s after the last write: held back
    with np.load(path) as data:
        assert list(data["ids"]) == [a]
    ids.close()  # the session ends: the track is released and the file gets everything
    with np.load(path) as data:
        assert list(data["ids"]) == [a, b]
    clock.t = 104.0  # a last seen at 0, b at 5 (released by close)
    assert ids.identify("", "face_3", scene((10, 5)), box, False, 200.0) == "person_3"
    assert ids.gallery.ids() == [a, b, "person_3"]  # no sweep on a followed frame
    ids.identify("", "face_3", scene((10, 5)), box, True, 200.0)
    assert ids.gallery.ids() == [b, "person_3"]  # the search swept a out (104 s > 100 s; b: 99 s)


def test_engine_puts_person_ids_on_estimates_and_ends_them_with_the_track():
    """Person 3 walks off (the track expires after 1 s), person 5 comes, person 3 comes back to
    another place: a new face id, the old person id."""
    def faces(i, rgb):
        return [(Box(10, 20, 40, 40), 0.9)] if i < 5 or i >= 40 else ([(Box(100, 20, 40, 40), 0.9)] if 20 <= i < 25 else [])
    images = [scene((10, 3)) if i < 5 else scene((100, 5)) if i < 30 else scene((10, 3)) for i in range(45)]
    embedder = PixelEmbedder()
    engine = PerceptionEngine(ConvModel(), ScriptedDetector(faces), EngineConfig(device="cpu", min_hits=1, smoothing="none",
                                                                                    track_memory_s=0.0),
                              identity=PersonIdentifier(embedder, refresh_s=100.0, enrol_views=1))
    out = [engine.process(Frame(img, stamp_ns=int(i * 0.1 * 1e9))) for i, img in enumerate(images)]
    first, other, back = out[0][0], out[20][0], out[40][0]
    assert [e[0].person_id for e in out[:5]] == ["person_1"] * 5
    assert other.person_id == "person_2" and back.person_id == "person_1"
    assert back.face_id != first.face_id and back.subject_id == "person_1"
    assert embedder.calls == 3  # one per track start (enrol_views=1: no enrolment views)
    assert "identify" in out[0][0].timings_ms


def test_engine_without_identity_leaves_person_id_empty():
    engine = PerceptionEngine(ConvModel(), ScriptedDetector(lambda i, rgb: [(Box(10, 20, 40, 40), 0.9)]),
                              EngineConfig(device="cpu", min_hits=1))
    est = engine.process(Frame(scene((10, 3))))[0]
    assert est.person_id == "" and est.subject_id == est.face_id
    assert "identify" not in est.timings_ms


def test_create_engine_says_why_identity_is_off(monkeypatch):
    from emotion_perception import pipeline

    def no_dlib():
        raise ImportError("No module named 'dlib'")

    monkeypatch.setattr("emotion_perception.persons.embedder.import_dlib", no_dlib)
    engine, choice = pipeline.create_engine("tiny-test-duse", device="cpu", detector="opencv")
    assert engine.identity is None
    assert "identity off, person ids are face track ids" in choice.reason and "dlib" in choice.reason


# ------------------------------------------------------------------ the real model on real photos

@pytest.fixture(scope="module")
def embedder():
    from emotion_perception.persons import create_embedder

    found, why = create_embedder()
    if found is None:
        pytest.skip(why)
    return found


def test_real_model_same_person_close_different_people_apart(embedder, shared_data):
    """London set (eval README): NNN neutral and smiling are one person, different NNN are not."""
    from emotion_perception.evaluation.evalset import load_image_items, read_image

    items = {i.name: i for i in load_image_items(shared_data / "eval" / "images" / "labels.csv")}
    vectors = {}
    for n in ("002", "037", "064", "103"):
        for look in ("neutral", "smiling"):
            item = items[f"london_{n}_{look}.jpg"]
            vectors[n, look] = embedder.embed(read_image(item.path), item.labels[0][0].box)
    assert all(v.shape == (128,) and np.isfinite(v).all() for v in vectors.values())
    threshold = PersonGallery().threshold
    for n in ("002", "037", "064", "103"):
        assert np.linalg.norm(vectors[n, "neutral"] - vectors[n, "smiling"]) < threshold, n
    for (n1, l1), (n2, l2) in [(a, b) for a in vectors for b in vectors if a[0] < b[0]]:
        assert np.linalg.norm(vectors[n1, l1] - vectors[n2, l2]) > threshold, (n1, n2)


# ------------------------------------------------------------------ the CLI

def _gallery_file(path):
    """Three persons seen just now (the CLI runs on the real clock) and one 2 h ago, kept 1 h."""
    import time

    clock = Clock(time.time() - 7200)
    g = PersonGallery(path=path, retention_s=3600, clock=clock)
    stale = g.add(unit(0.5, 0.5))
    clock.t = time.time()
    ids = [g.add(unit(1.0)), g.add(unit(0.0, 1.0)), g.add(unit(0.0, 0.0, 1.0))]
    g.save()  # sightings are written at most every SAVE_EVERY_S; the session's end saves the rest
    with np.load(path) as data:
        assert stale in list(data["ids"])
    return ids


def test_cli_lists_and_forgets_one_person_or_everyone(tmp_path, capsys):
    from emotion_perception.cli import main

    path = tmp_path / "gallery.npz"
    a, b, c = _gallery_file(path)
    assert main(["persons", "list", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 person(s), kept 3600 s" in out and all(p in out for p in (a, b, c))  # the stale one expired
    assert main(["persons", "forget", str(path), "--person", b]) == 0
    assert "erased person_3" in capsys.readouterr().out
    assert PersonGallery(path=path).ids() == [a, c]
    assert main(["persons", "forget", str(path), "--person", b]) == 1  # gone already: says so, fails
    assert "no person 'person_3'" in capsys.readouterr().out
    assert main(["persons", "forget", str(path), "--all"]) == 0
    with np.load(path) as data:
        assert data["embeddings"].shape[0] == 0 and list(data["ids"]) == []


def test_cli_persons_errors_are_one_line(tmp_path, capsys):
    from emotion_perception.cli import main

    assert main(["persons", "list", str(tmp_path / "missing.npz")]) == 1
    assert "no gallery file" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    assert main(["persons", "forget", str(bad), "--all"]) == 1
    err = capsys.readouterr().err
    assert "not a person gallery" in err and "Traceback" not in err
    path = tmp_path / "g.npz"
    _gallery_file(path)
    assert main(["persons", "forget", str(path)]) == 1
    assert "--person ID or --all" in capsys.readouterr().err
