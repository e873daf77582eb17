"""The perception node's ROS4HRI (REP-155) output on a real ROS 2 graph, with hri_msgs installed.

Two real people side by side (../shared/data/images: the astronaut's head and Grace Hopper), then the
right one leaves (that half goes blank), then both (a blank frame), then both come back. Checked against what the
images and /emotions say, frame by frame (the id lists carry the image's stamp with one camera):

- /humans/faces/tracked lists the face ids /emotions gives for the same frame: two, then one;
- each face's /humans/faces/<id>/expression is a valid hri_msgs/Expression: one of hri_msgs' own
  expression constants for the class /emotions names, with its valence, arousal and confidence;
- /humans/persons/tracked lists the person ids /emotions' EmotionState.person_id carries, and
  /humans/persons/<id>/face_id, subscribed to latched as ROS4HRI's libhri does, is the face id
  /emotions pairs with that person;
- whoever leaves leaves both lists, and their per-id topics lose their publisher; a blank view
  empties both lists;
- people who come back are listed under their old person ids, and each person's face_id names
  their face of now; deactivating sends empty lists.

hri_msgs is on neither PyPI nor Debian: ``bash scripts/ros_overlay.sh --with-hri OVERLAY [VENV]``
builds it (docs/ros.md), then ``. OVERLAY/env.sh``; without it this module skips.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")
pytest.importorskip(
    "hri_msgs.msg",
    reason="needs hri_msgs (ROS4HRI; on neither PyPI nor Debian): bash scripts/ros_overlay.sh --with-hri "
           "OVERLAY [VENV], then . OVERLAY/env.sh (docs/ros.md)")

from hri_msgs.msg import Expression, IdsList  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from emotion_perception.messages import stamp_to_ns  # noqa: E402
from ros_graph import lite_profile, wait_for  # noqa: E402,F401
from test_perception_node import Graph, activate  # noqa: E402

TOPIC = "hri_cam"
CAMERA_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)  # nothing lost in transport
# how ROS4HRI's libhri subscribes to /humans/persons/<id>/face_id (REP-155: latched)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# our class names -> hri_msgs' constants, written out here from hri_msgs/msg/Expression.msg
EXPECTED = {"happy": Expression.HAPPY, "sad": Expression.SAD, "neutral": Expression.NEUTRAL,
            "angry": Expression.ANGRY, "surprise": Expression.SURPRISED, "disgust": Expression.DISGUSTED,
            "fear": Expression.SCARED}


def read_rgb(path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Camera:
    """Publishes the current scene (10 Hz unless told), each frame with a new stamp; remembers which
    scene each stamp showed."""

    def __init__(self, g: Graph, scenes: dict[str, np.ndarray], hz: float = 10.0):
        self.g, self.scenes, self.scene, self.period = g, scenes, None, 1.0 / hz
        self.pub = g.peer.create_publisher(Image, TOPIC, CAMERA_QOS)
        self.sent: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def show(self, scene: str) -> None:
        self.scene = scene

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            scene = self.scene
            if scene is None:
                continue
            stamp = time.time_ns()
            self.sent[stamp] = scene
            self.pub.publish(self.g.image(self.scenes[scene], stamp))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Hri:
    """The test's view of the REP-155 topics, keyed by the stamps of the frames they answer."""

    def __init__(self, g: Graph):
        self.g = g
        self.faces: list = []
        self.persons: list = []
        self.expressions: dict[str, list] = {}
        self.face_of: dict[str, list[str]] = {}
        g.peer.create_subscription(IdsList, "/humans/faces/tracked", self.faces.append, 100)
        g.peer.create_subscription(IdsList, "/humans/persons/tracked", self.persons.append, 100)

    def follow_face(self, face_id: str) -> None:
        if face_id not in self.expressions:
            self.expressions[face_id] = []
            self.g.peer.create_subscription(Expression, f"/humans/faces/{face_id}/expression",
                                            self.expressions[face_id].append, 100)

    def follow_person(self, person_id: str) -> None:
        if person_id not in self.face_of:
            self.face_of[person_id] = []
            self.g.peer.create_subscription(String, f"/humans/persons/{person_id}/face_id",
                                            lambda m: self.face_of[person_id].append(m.data), LATCHED)

    def publishers(self, topic: str) -> int:
        return self.g.peer.count_publishers(topic)


def emotions_by_stamp(g: Graph) -> dict[int, list]:
    return {stamp_to_ns(a.header.stamp): list(a.states) for a in list(g.arrays)}


def answered(g: Graph, camera: Camera, hri: Hri, scene: str):
    """(stamp, states, face ids listed, person ids listed) of the frames of ``scene`` answered on
    /emotions and both tracked lists, in order."""
    states = emotions_by_stamp(g)
    faces = {stamp_to_ns(m.header.stamp): sorted(m.ids) for m in list(hri.faces)}
    persons = {stamp_to_ns(m.header.stamp): sorted(m.ids) for m in list(hri.persons)}
    stamps = sorted(s for s, name in list(camera.sent.items()) if name == scene and s in states and s in faces
                    and s in persons)
    return [(s, states[s], faces[s], persons[s]) for s in stamps]


def waiting(g: Graph, camera: Camera, hri: Hri, scene: str, condition, timeout: float, what: str):
    """wait_for, saying on timeout what the last frames of ``scene`` gave."""
    try:
        return wait_for(condition, timeout, what)
    except AssertionError as err:
        last = [(s, [(st.face_id, st.person_id) for st in states], faces, persons)
                for s, states, faces, persons in answered(g, camera, hri, scene)[-5:]]
        raise AssertionError(f"{err}; last {scene} frames (stamp, /emotions, faces, persons): {last}; "
                             f"{len(camera.sent)} frames sent, {len(g.arrays)} answered") from None


def test_rep155_faces_and_persons_follow_the_people_in_view(lite_profile, shared_data):
    # the astronaut's head, doubled to Grace Hopper's face size: the opencv detector looks at the
    # image shrunk to 256 px wide, where the whole photo's face would be too small beside hers
    left = cv2.resize(read_rgb(shared_data / "images" / "astronaut.png")[:256, 96:352], (512, 512))
    right = read_rgb(shared_data / "images" / "grace_hopper_512x512.jpg")
    assert left.shape == right.shape == (512, 512, 3)
    blank = np.zeros_like(right)
    scenes = {"both": np.hstack([left, right]), "left": np.hstack([left, blank]), "blank": np.hstack([blank, blank])}
    scenes["again"] = scenes["both"]

    g = Graph(image_topics=[TOPIC], identity=True)
    camera = None
    try:
        hri = Hri(g)
        camera = Camera(g, scenes)
        wait_for(lambda: g.node.get_publishers_info_by_topic(f"{g.ns}/{TOPIC}"), 10, "the camera's discovery")
        activate(g)
        assert g.node._pubs.get("tracked") is not None, "hri_msgs is importable, yet the node offers no REP-155 output"

        # --- two people in view
        camera.show("both")
        frames = waiting(g, camera, hri, "both",
                         lambda: len(answered(g, camera, hri, "both")) >= 5 and answered(g, camera, hri, "both"),
                         90, "5 frames of two people answered on /emotions and the tracked lists")
        for stamp, states, faces, persons in frames:
            assert len(states) == 2, f"two people in the image, /emotions has {len(states)} faces"
            assert faces == sorted(s.face_id for s in states), (stamp, faces)
            assert persons == sorted(s.person_id for s in states), (stamp, persons)
        people = {s.person_id: s.face_id for s in frames[-1][1]}
        assert len(people) == 2 and all(p.startswith("person_") for p in people), people
        boxes = {s.face_id: s.face_box.x_offset + s.face_box.width / 2 for s in frames[-1][1]}
        on_left = min(boxes, key=boxes.get)
        on_right = max(boxes, key=boxes.get)
        assert boxes[on_left] < 512 <= boxes[on_right], boxes

        # each face's expression: a valid Expression for the /emotions state of the same frame
        for face_id in people.values():
            hri.follow_face(face_id)
        for person_id in people:
            hri.follow_person(person_id)
        def expressions_with_emotions():
            states = emotions_by_stamp(g)
            pairs = {f: [(m, states[stamp_to_ns(m.header.stamp)]) for m in list(v) if stamp_to_ns(m.header.stamp)
                         in states] for f, v in hri.expressions.items()}
            return all(len(p) >= 3 for p in pairs.values()) and pairs

        paired = wait_for(expressions_with_emotions, 30, "3 expressions of each face, with /emotions of their frame")
        for face_id, pairs in paired.items():
            checked = 0
            for msg, states in pairs:
                stamp = stamp_to_ns(msg.header.stamp)
                state = next(s for s in states if s.face_id == face_id)
                assert camera.sent[stamp] == "both" and msg.header.frame_id == "head_camera"
                assert msg.expression == EXPECTED[state.class_name], (msg.expression, state.class_name)
                assert -1.0 <= msg.valence <= 1.0 and -1.0 <= msg.arousal <= 1.0 and 0.0 < msg.confidence <= 1.0
                assert (msg.valence, msg.arousal, msg.confidence) == pytest.approx(
                    (state.valence, state.arousal, state.confidence), abs=1e-6)
                checked += 1
            assert checked >= 3, face_id
        # each person's face_id: the face /emotions pairs with that person
        wait_for(lambda: all(len(v) >= 3 for v in hri.face_of.values()), 30, "the face_id of both persons")
        for person_id, face_ids in hri.face_of.items():
            assert set(face_ids) == {people[person_id]}, (person_id, face_ids)
        right_person = next(p for p, f in people.items() if f == on_right)
        left_person = next(p for p, f in people.items() if f == on_left)

        # --- the person on the right leaves: only the left one stays listed, and keeps their ids
        camera.show("left")
        waiting(g, camera, hri, "left", lambda: any(f == [on_left] for _, _, f, _ in answered(g, camera, hri, "left")),
                30, f"the right face to leave /humans/faces/tracked, {on_left} on the left staying")
        time.sleep(1.0)  # more frames with one person
        frames = answered(g, camera, hri, "left")
        gone = next(i for i, (_, _, faces, _) in enumerate(frames) if faces == [on_left])
        for stamp, states, faces, persons in frames[:gone]:  # within track_patience_s of leaving
            assert on_left in faces and set(faces) <= {on_left, on_right}, (stamp, faces)
        for stamp, states, faces, persons in frames[gone:]:
            assert faces == [on_left], "once gone, the right face stays off the list"
            assert [s.face_id for s in states] == [on_left], "the left person alone in view"
            assert persons == [left_person] == [s.person_id for s in states]
        wait_for(lambda: hri.publishers(f"/humans/faces/{on_right}/expression") == 0, 10,
                 "the right face's expression topic to lose its publisher")
        wait_for(lambda: hri.publishers(f"/humans/persons/{right_person}/face_id") == 0, 10,
                 "the right person's face_id topic to lose its publisher")
        assert hri.publishers(f"/humans/faces/{on_left}/expression") == 1
        assert hri.publishers(f"/humans/persons/{left_person}/face_id") == 1

        # --- nobody in view: both lists empty, no per-id topic left
        camera.show("blank")
        waiting(g, camera, hri, "blank", lambda: any(f == [] and p == [] for _, _, f, p in answered(g, camera, hri, "blank")),
                30, "both tracked lists to empty")
        last = answered(g, camera, hri, "blank")[-1]
        assert last[1] == [] and last[2] == [] and last[3] == [], last
        for topic in (f"/humans/faces/{on_left}/expression", f"/humans/persons/{left_person}/face_id"):
            wait_for(lambda: hri.publishers(topic) == 0, 10, f"{topic} to lose its publisher")

        # --- both come back: the same people, so the same person ids (the face ids are the
        # tracker's: it may give a face that comes back where it left its old id again)
        camera.show("again")
        frames = waiting(g, camera, hri, "again",
                         lambda: [fr for fr in answered(g, camera, hri, "again") if len(fr[2]) == 2][-3:], 60,
                         "both people listed again")
        for stamp, states, faces, persons in frames:
            assert len(states) == 2 and faces == sorted(s.face_id for s in states), (faces, states)
            assert persons == sorted(people) == sorted(s.person_id for s in states), persons
        again = {s.person_id: s.face_id for s in frames[-1][1]}
        wait_for(lambda: all(v and v[-1] == again[p] for p, v in hri.face_of.items()), 30,
                 "each person's face_id to name their new face")

        # --- deactivating with both in view: the lists say that nobody is tracked any more
        camera.close()
        camera = None
        listed = len(hri.faces), len(hri.persons)
        assert g.node.trigger_deactivate().name == "SUCCESS"
        try:
            wait_for(lambda: hri.faces[listed[0]:] and hri.persons[listed[1]:] and not hri.faces[-1].ids
                     and not hri.persons[-1].ids, 10, "an empty list of each kind at deactivate")
        except AssertionError:
            raise AssertionError(f"faces {[list(m.ids) for m in hri.faces[listed[0] - 2:]]}, "
                                 f"persons {[list(m.ids) for m in hri.persons[listed[1] - 2:]]}") from None
    finally:
        if camera is not None:
            camera.close()
        g.close()


def test_people_coming_and_going_do_not_stop_the_node(lite_profile, shared_data):
    """The per-id topics are made and destroyed on the inference worker's thread while the executor
    spins. A group photo shown in every other frame (the tracker's patience 0: its faces leave the
    lists in the next frame without them) for 15 s must not stop the node's spin: a QoS event
    handler of a destroyed publisher ended it now and then (rclpy, Jazzy)."""
    face = read_rgb(shared_data / "images" / "multi_face.jpg")
    g = Graph(image_topics=[TOPIC], identity=False, track_patience_s=0.0, detect_interval_s=0.0)
    camera = None
    try:
        hri = Hri(g)
        camera = Camera(g, {"face": face, "blank": np.zeros_like(face)}, hz=30.0)
        wait_for(lambda: g.node.get_publishers_info_by_topic(f"{g.ns}/{TOPIC}"), 10, "the camera's discovery")
        activate(g)
        camera.show("face")
        listed = wait_for(lambda: next((m.ids for m in list(hri.faces) if m.ids), None), 30, "the faces listed")
        for face_id in listed:  # a consumer of each face (more for the executor to wait on)
            hri.follow_face(face_id)
        end = time.monotonic() + 15.0
        while time.monotonic() < end:
            camera.show("blank" if camera.scene == "face" else "face")
            time.sleep(1 / 30)
        camera.show("face")
        sent = len(camera.sent)
        waiting(g, camera, hri, "face", lambda: any(s in list(camera.sent)[sent:] for s, *_ in
                                                   answered(g, camera, hri, "face")), 10, "the node to answer still")
        lists = [bool(m.ids) for m in list(hri.faces)]
        left = sum(1 for a, b in zip(lists, lists[1:]) if a and not b)
        assert left >= 20, f"the faces left the list only {left} times: the test did not test"
    finally:
        if camera is not None:
            camera.close()
        g.close()
