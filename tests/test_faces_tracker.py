"""Face tracker on synthetic boxes and on real videos; square face crops at image borders."""
from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest

from emotion_perception.faces import FaceTracker, Track, TrackerUpdate, create_detector, crop_face
from emotion_perception.images import ImageError
from emotion_perception.types import Box, Detection


def det(x: float, y: float, size: float = 80, score: float = 0.9) -> Detection:
    return Detection(Box(x, y, size, size), score)


def ids(update: TrackerUpdate) -> list[str]:
    return [t.track_id for t in update.visible]


def read_frames(path, step: int = 1) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB))
    capture.release()
    assert frames, f"cannot read {path}"
    return frames[::step]


# --- synthetic ---------------------------------------------------------------------------------


def test_new_faces_get_fresh_ids_with_prefix():
    tracker = FaceTracker(id_prefix="cam0/")
    update = tracker.update([det(0, 0), det(300, 0)])
    assert ids(update) == ["cam0/face_1", "cam0/face_2"]
    assert update.expired == []
    track = update.visible[0]
    assert isinstance(track, Track) and track.hits == 1 and track.missed == 0 and track.score == 0.9


def test_slow_motion_keeps_the_id_and_counts_hits():
    tracker = FaceTracker()
    for step in range(10):
        update = tracker.update([det(100 + 5 * step, 50)])
    assert ids(update) == ["face_1"]
    assert update.visible[0].hits == 10
    assert update.visible[0].box == Box(145, 50, 80, 80)


def test_two_crossing_faces_keep_their_ids():
    """A walks right, B walks left at the same height; they pass through each other at step 10.

    Overlap alone is ambiguous after they meet; the velocity prediction tells them apart.
    """
    tracker = FaceTracker()
    a, b = ids(tracker.update([det(0, 100), det(400, 100)]))
    for step in range(1, 21):
        # Hand the detections over in alternating order so order cannot carry the identity.
        dets = [det(20 * step, 100), det(400 - 20 * step, 100)]
        update = tracker.update(dets[::-1] if step % 2 else dets)
        by_id = {t.track_id: t.box.x for t in update.visible}
        assert by_id == {a: 20 * step, b: 400 - 20 * step}, step


def test_fast_motion_without_overlap_uses_centre_distance():
    tracker = FaceTracker()
    tracker.update([det(0, 0)])
    update = tracker.update([det(60, 0)])  # IoU(80 px boxes 60 px apart) = 0.14 < 0.3
    assert ids(update) == ["face_1"]
    update = tracker.update([det(400, 300)])  # far beyond a box side: a different face
    assert ids(update) == ["face_2"]


def test_a_missed_frame_within_patience_keeps_the_id():
    tracker = FaceTracker(patience_s=0.12)  # no stamps: updates count as 1/30 s, so 3 misses = 0.1 s
    tracker.update([det(100, 100)])
    tracker.update([det(110, 100)])
    for _ in range(3):
        update = tracker.update([])
        assert update.visible == [] and update.expired == []
    assert [t.missed for t in tracker.tracks] == [3]
    update = tracker.update([det(150, 100)])  # moved on meanwhile: prediction follows it
    assert ids(update) == ["face_1"] and update.visible[0].missed == 0


def test_expiry_is_reported_exactly_once_and_ids_are_never_reused():
    tracker = FaceTracker(patience_s=0.07, memory_s=0)
    tracker.update([det(100, 100)])
    expired = []
    for _ in range(10):
        expired += tracker.update([]).expired
    assert expired == ["face_1"]
    assert tracker.tracks == []
    update = tracker.update([det(100, 100)])  # same place, but gone longer than the patience
    assert ids(update) == ["face_2"]


@pytest.mark.parametrize("fps", [5, 12, 30])
def test_patience_is_camera_time_whatever_the_frame_rate(fps):
    """A 0.8 s head turn keeps the id at any frame rate; a 1.4 s one expires (patience 1 s)."""
    for gap_s, kept in ((0.8, True), (1.4, False)):
        tracker = FaceTracker(patience_s=1.0, memory_s=0)
        t = 0.0
        tracker.update([det(100, 100)], now=t)
        expired = []
        for _ in range(round(gap_s * fps)):
            t += 1 / fps
            expired += tracker.update([], now=t).expired
        update = tracker.update([det(104, 100)], now=t + 1 / fps)
        assert (ids(update) == ["face_1"]) is kept and (expired == []) is kept, (fps, gap_s)


def test_a_face_back_within_memory_gets_its_id_back():
    """Gone past the patience (expired: the engine drops its window), back near where it left
    within memory_s: the old id again. Back after the memory, or somewhere else: a new id."""
    tracker = FaceTracker(patience_s=0.5, memory_s=2.0)
    tracker.update([det(100, 100)], now=0.0)
    assert tracker.update([], now=1.0).expired == ["face_1"]
    update = tracker.update([det(150, 110)], now=2.0)  # 0.6 box sides away, 2 s after last seen
    assert ids(update) == ["face_1"] and update.visible[0].hits == 1
    assert tracker.update([], now=3.0).expired == ["face_1"]
    assert ids(tracker.update([det(100, 100)], now=6.0)) == ["face_2"]  # 3 s after: remembered no more
    assert ids(tracker.update([det(400, 300), det(100, 100)], now=6.1)) == ["face_2", "face_3"]


def test_two_faces_back_at_once_get_their_own_ids():
    tracker = FaceTracker(patience_s=0.2, memory_s=3.0)
    tracker.update([det(0, 100), det(300, 100)], now=0.0)
    tracker.update([], now=0.5)
    update = tracker.update([det(310, 100), det(10, 100)], now=1.0)
    assert {t.track_id: t.box.x for t in update.visible} == {"face_1": 10, "face_2": 310}


def test_stamps_that_repeat_or_go_back_still_advance_the_clock():
    tracker = FaceTracker(patience_s=0.05, memory_s=0)
    tracker.update([det(0, 0)], now=5.0)
    expired = []
    for _ in range(3):  # the same stamp again: counted as 1/30 s each
        expired += tracker.update([], now=5.0).expired
    assert expired == ["face_1"] and tracker.now == pytest.approx(5.1)


def test_visible_excludes_missed_tracks():
    tracker = FaceTracker()
    tracker.update([det(0, 0), det(300, 0)])
    update = tracker.update([det(300, 0)])
    assert ids(update) == ["face_2"]
    assert sorted(t.track_id for t in tracker.tracks) == ["face_1", "face_2"]


def test_next_time_changes_nothing_and_predictions_follow_the_motion_of_seen_faces():
    tracker = FaceTracker(memory_s=0)
    assert tracker.next_time(2.0) == 2.0 and tracker.next_time(None) == 0.0 and tracker.now == 0.0
    tracker.update([det(0, 0), det(300, 0)], now=1.0)
    tracker.update([det(10, 4)], now=1.5)  # face_1 moved 20 px/s right and 8 px/s down; face_2 missed
    assert tracker.next_time(1.5) == pytest.approx(1.5 + 1 / 30) and tracker.now == 1.5
    ((track_id, box),) = tracker.predictions(1.75)
    assert track_id == "face_1" and (box.x, box.y, box.w) == pytest.approx((15, 6, 80))


def test_invalid_settings():
    with pytest.raises(ValueError):
        FaceTracker(iou_threshold=0)
    with pytest.raises(ValueError):
        FaceTracker(patience_s=-1)
    with pytest.raises(ValueError):
        FaceTracker(memory_s=-0.1)


# --- real videos -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opencv_detector():
    return create_detector("opencv")


def test_single_face_video_keeps_one_id(shared_data, opencv_detector):
    frames = read_frames(shared_data / "videos" / "single_face.mp4")
    tracker = FaceTracker()
    seen: Counter[str] = Counter()
    for frame in frames:
        update = tracker.update(opencv_detector.detect(frame))
        seen.update(ids(update))
        assert update.expired == []
    track_id, count = seen.most_common(1)[0]
    assert count >= 0.9 * len(frames), seen
    assert len(seen) <= 2, seen


def test_blazeface_tracks_single_face_video(shared_data):
    folder = shared_data / "blazeface"
    detector = create_detector(
        "blazeface", path_to_detector=folder / "blazeface.pth", path_to_anchor=folder / "anchors.npy"
    )
    tracker = FaceTracker()
    seen: Counter[str] = Counter()
    for frame in read_frames(shared_data / "videos" / "single_face.mp4", step=4):
        seen.update(ids(tracker.update(detector.detect(frame))))
    assert seen == Counter({"face_1": 18})


@pytest.mark.parametrize("memory_s, same_id", [(3.0, True), (0.0, False)])
def test_face_that_leaves_and_returns(shared_data, opencv_detector, memory_s, same_id):
    """face_noface.mov shows a face (frames 0-71), then a cartoon without faces. Play face
    frames 0-39, 20 face-free frames (0.67 s at 30 fps, longer than a 5-frame patience), then
    face frames 40-71: the face gets its id back from the tracker's memory, or a new id without it."""
    frames = read_frames(shared_data / "videos" / "face_noface.mov")
    sequence = frames[:40] + frames[80:100] + frames[40:72]
    tracker = FaceTracker(patience_s=5 / 30 + 0.01, memory_s=memory_s)
    per_frame, expired = [], []
    for frame in sequence:
        update = tracker.update(opencv_detector.detect(frame))
        per_frame.append(ids(update))
        expired += update.expired
    before = Counter(i for visible in per_frame[:40] for i in visible)
    gap = [visible for visible in per_frame[40:60]]
    after = Counter(i for visible in per_frame[60:] for i in visible)
    first, count_before = before.most_common(1)[0]
    second, count_after = after.most_common(1)[0]
    assert count_before >= 36 and count_after >= 29, (before, after)
    assert gap == [[]] * 20
    assert (second == first) is same_id
    if not same_id:
        assert second not in before  # a new id, no reuse
    assert expired.count(first) == 1 and len(expired) == len(set(expired))


# --- crops -------------------------------------------------------------------------------------


def test_crop_inside_the_image_is_the_square_around_the_box():
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    crop = crop_face(image, Box(100, 50, 40, 60), margin=0.25)
    # side = 60 * 1.5 = 90, centred on (120, 80)
    assert crop.shape == (90, 90, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, image[35:125, 75:165])
    assert crop_face(image, Box(100, 50, 40, 60), margin=0).shape == (60, 60, 3)


def test_crop_keeps_the_box_shape_or_moves_down_when_asked():
    image = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    # not square: 40 x 60 box * 1.5 = 60 x 90, centred on (120, 80)
    np.testing.assert_array_equal(crop_face(image, Box(100, 50, 40, 60), 0.25, square=False), image[35:125, 90:150])
    # shift 0.25 of a 40 px box: centre (120, 70) moves to (120, 80); side 40
    np.testing.assert_array_equal(crop_face(image, Box(100, 50, 40, 40), 0.0, shift=0.25), image[60:100, 100:140])


def test_crop_at_the_corner_is_zero_padded_and_keeps_the_face_centred():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_face(image, Box(-10, -10, 40, 40), margin=0.5)  # side 80 centred on (10, 10)
    assert crop.shape == (80, 80, 3)
    np.testing.assert_array_equal(crop[:30, :], 0)  # rows above the image
    np.testing.assert_array_equal(crop[:, :30], 0)  # columns left of it
    np.testing.assert_array_equal(crop[30:, 30:], 200)
    crop = crop_face(image, Box(90, 95, 20, 20), margin=0)  # bottom-right corner
    np.testing.assert_array_equal(crop[:5, :10], 200)
    assert crop[5:, :].max() == 0 and crop[:, 10:].max() == 0


def test_crop_is_never_empty():
    image = np.full((50, 50, 3), 7, np.uint8)
    assert crop_face(image, Box(10, 10, 0, 0)).shape == (1, 1, 3)
    outside = crop_face(image, Box(500, 500, 20, 20))
    assert outside.shape == (30, 30, 3) and outside.max() == 0


def test_crop_rejects_bad_input():
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="non-finite"):
        crop_face(image, Box(float("nan"), 0, 10, 10))
    with pytest.raises(ValueError, match="margin"):
        crop_face(image, Box(0, 0, 10, 10), margin=-1)
    with pytest.raises(ImageError):
        crop_face(np.zeros((50, 50), np.uint8), Box(0, 0, 10, 10))


# --- hand-worked geometry: the centre-distance gate, the size test and the velocity estimate ---

def _box_det(x: float, y: float, w: float, h: float | None = None) -> Detection:
    return Detection(Box(x, y, w, w if h is None else h), 0.9)


@pytest.mark.parametrize("patience, lost_s, distance, same", [
    # gate = max_jump * (1 + min(lost / patience, 1)) * side, lost = missed time beyond one frame
    (1.0, 0.5, 29.0, True), (1.0, 0.5, 31.0, False),  # 20 px * 1.5 = 30 px
    (2.0, 0.5, 24.0, True), (2.0, 0.5, 26.0, False),  # 20 px * 1.25 = 25 px
    (0.5, 0.25, 29.0, True), (0.5, 0.25, 31.0, False),  # 20 px * 1.5 = 30 px
    (1.0, 0.0, 19.0, True), (1.0, 0.0, 21.0, False),  # the next frame: 20 px
])
def test_centre_distance_gate_widens_while_the_face_is_lost(patience, lost_s, distance, same):
    tracker = FaceTracker(patience_s=patience, memory_s=0.0, nominal_fps=30.0)
    t0 = 10.0  # not 0: a sum instead of a difference of times shows
    first = ids(tracker.update([_box_det(100, 100, 20)], t0))
    tracker.update([], t0 + 1 / 30)  # missed
    now = t0 + 1 / 30 + lost_s
    later = tracker.update([_box_det(100, 100 + distance, 20)], now)  # straight down: no overlap, no x offset
    assert (ids(later) == first) is same


def test_a_long_pause_widens_the_gate_to_twice_at_most():
    tracker = FaceTracker(patience_s=1.0, memory_s=0.0)
    first = ids(tracker.update([_box_det(100, 100, 20)], 10.0))
    tracker.update([], 10.5)
    assert ids(tracker.update([_box_det(100, 150, 20)], 60.0)) != first  # 50 px > 2 * 20 px


@pytest.mark.parametrize("w, h, same", [(40, 20, True), (20, 10, True), (41, 20, False), (50, 20, False),
                                         (19.6, 10, False)])
def test_a_face_is_given_back_its_id_only_at_half_to_twice_its_area(w, h, same):
    tracker = FaceTracker(patience_s=0.1, memory_s=3.0)
    first = ids(tracker.update([_box_det(100, 100, 20)], 0.0))  # 400 px², centre (110, 110)
    tracker.update([], 0.2)  # expired, remembered
    back = ids(tracker.update([_box_det(110 - w / 2, 110 - h / 2, w, h)], 0.3))  # same centre, w * h px²
    assert (back == first) is same


def _mover():
    # 40 px faces; IoU >= 0.35 matches; otherwise the centre gate is 0.25 * 40 px * widen (about 14 px here)
    return FaceTracker(iou_threshold=0.35, patience_s=1.0, max_jump=0.25, memory_s=0.0)


def test_velocity_is_averaged_over_the_last_two_moves_and_extrapolated():
    """x moves +10 px then +20 px per 0.1 s (100 then 200 px/s), y moves 0 then +10 px (0 then
    100 px/s): averaged to 150 and 50 px/s, so 0.4 s later the face is expected 60 px right and
    20 px down. 20 px off that would be a new face."""
    tracker, t0 = _mover(), 10.0
    first = ids(tracker.update([_box_det(0, 0, 40)], t0))
    assert ids(tracker.update([_box_det(10, 0, 40)], t0 + 0.1)) == first
    assert ids(tracker.update([_box_det(30, 10, 40)], t0 + 0.2)) == first
    assert ids(tracker.update([_box_det(90, 30, 40)], t0 + 0.6)) == first


def test_a_first_move_gives_the_velocity_as_it_is():
    tracker, t0 = _mover(), 10.0
    first = ids(tracker.update([_box_det(0, 0, 40)], t0))
    assert ids(tracker.update([_box_det(10, 5, 40)], t0 + 0.1)) == first  # 100, 50 px/s
    assert ids(tracker.update([_box_det(50, 25, 40)], t0 + 0.5)) == first  # 0.4 s later: +40, +20


def test_settings_at_their_edges_and_the_messages():
    default = FaceTracker()
    assert (default.patience_s, default.memory_s) == (1.0, 3.0)
    FaceTracker(iou_threshold=1.0, patience_s=0.0, max_jump=0.0, nominal_fps=0.5)  # all allowed
    with pytest.raises(ValueError, match=r"^iou_threshold must be in \(0, 1\], got 1.5$"):
        FaceTracker(iou_threshold=1.5)
    with pytest.raises(ValueError, match=r"^patience_s, memory_s and max_jump must be >= 0 and nominal_fps > 0, "
                                         r"got 1.0, 3.0, 1.0, 0$"):
        FaceTracker(nominal_fps=0)


def test_one_detection_between_two_tracks_goes_to_one_of_them():
    tracker = FaceTracker(patience_s=1.0)
    tracker.update([_box_det(0, 0, 20), _box_det(14, 0, 20)], 0.0)
    update = tracker.update([_box_det(7, 0, 20)], 0.1)  # overlaps both
    assert len(update.visible) == 1


def test_match_edges_are_inclusive():
    # IoU exactly the threshold: 20 px boxes 10 px apart share 200 of 600 px²; no distance fallback
    tracker = FaceTracker(iou_threshold=200 / 600, max_jump=0.0)
    first = ids(tracker.update([_box_det(0, 0, 20)], 0.0))
    assert ids(tracker.update([_box_det(10, 0, 20)], 0.25)) == first
    # centre distance exactly the gate: 20 px * (1 + 0.5 s / 1 s) = 30 px (binary-exact times)
    tracker = FaceTracker(patience_s=1.0, nominal_fps=4.0)
    first = ids(tracker.update([_box_det(100, 100, 20)], 10.0))
    tracker.update([], 10.25)
    assert ids(tracker.update([_box_det(100, 130, 20)], 10.75)) == first


def test_memory_edges_are_inclusive():
    # gone for exactly patience + memory: still remembered; back exactly 1.5 sides away: given its id
    tracker = FaceTracker(patience_s=0.25, memory_s=0.5)
    first = ids(tracker.update([_box_det(100, 100, 20)], 10.0))
    assert tracker.update([], 10.5).expired == first
    back = tracker.update([det(100, 130, 20, score=0.7)], 10.75)
    assert ids(back) == first and back.visible[0].score == 0.7


@pytest.mark.parametrize("w, h, dx, dy", [(40, 10, 56, 0), (10, 40, 0, 56)])
def test_revival_distance_counts_in_the_longer_side(w, h, dx, dy):
    tracker = FaceTracker(patience_s=0.1, memory_s=3.0)
    first = ids(tracker.update([Detection(Box(100, 100, w, h), 0.9)], 0.0))
    tracker.update([], 0.2)
    assert ids(tracker.update([Detection(Box(100 + dx, 100 + dy, w, h), 0.9)], 0.3)) == first  # 1.4 sides


def test_far_faces_and_taken_faces_are_not_revived():
    tracker = FaceTracker(patience_s=0.1, memory_s=3.0)
    a, b = ids(tracker.update([_box_det(100, 100, 20), _box_det(140, 100, 20)], 0.0))
    tracker.update([], 0.2)
    # a new face at a's place and one 10 px right of it: a goes to the first; a cannot be given twice,
    # b (30 px = 1.5 sides from the second) goes to the second
    back = tracker.update([_box_det(100, 100, 20), _box_det(110, 100, 20)], 0.3)
    assert sorted(ids(back)) == sorted([a, b])
    tracker = FaceTracker(patience_s=0.1, memory_s=3.0)
    (c,) = ids(tracker.update([_box_det(100, 100, 20)], 0.0))
    tracker.update([], 0.2)
    assert ids(tracker.update([_box_det(100, 160, 20)], 0.3)) != [c]  # 3 sides away: someone else
