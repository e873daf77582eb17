"""/humans/faces/tracked across cameras: the tracker's patience, in seconds, for running and stopped cameras."""
from __future__ import annotations

import pytest

from emotion_perception.ros.tracked import TrackedFaces

DT = 1 / 30


def test_a_face_missing_from_its_camera_leaves_after_the_patience():
    tracked = TrackedFaces(patience_s=2.5 * DT)
    t = 0.0
    assert tracked.update("/a", ["cam0_face_1"], t) == ["cam0_face_1"]
    for _ in range(2):  # missed twice (2 frame times): still kept
        t += DT
        assert tracked.update("/a", [], t) == ["cam0_face_1"]
    t += DT
    assert tracked.update("/a", [], t) == []  # 3 frame times > patience: gone


def test_a_stopped_cameras_faces_expire_while_the_others_stay():
    tracked = TrackedFaces(patience_s=0.2)
    t = 0.0
    for _ in range(30):  # both cameras at 30 Hz
        t += DT
        tracked.update("/left", ["cam0_face_1"], t)
        tracked.update("/right", ["cam1_face_1", "cam1_face_2"], t)
    assert tracked.ids() == ["cam0_face_1", "cam1_face_1", "cam1_face_2"]
    stopped = t
    expired_at = None
    while expired_at is None:  # the left camera keeps sending; the node's timer checks every frame here
        t += DT
        tracked.update("/left", ["cam0_face_1"], t)
        if tracked.expire(t):
            expired_at = t
    assert 0.2 < expired_at - stopped <= 0.2 + DT + 1e-9
    assert tracked.ids() == ["cam0_face_1"]
    assert not tracked.expire(t)  # nothing more to expire: no repeated publication
    tracked.update("/right", ["cam1_face_3"], t + DT)  # the camera comes back
    assert tracked.ids() == ["cam0_face_1", "cam1_face_3"]


def test_expire_alone_ends_a_silent_camera_and_bad_patience_is_refused():
    tracked = TrackedFaces(patience_s=1.0)
    tracked.update("/a", ["face_1"], 10.0)
    assert not tracked.expire(10.9) and tracked.ids() == ["face_1"]
    assert tracked.expire(11.1) and tracked.ids() == []
    with pytest.raises(ValueError, match="patience"):
        TrackedFaces(patience_s=-1)
