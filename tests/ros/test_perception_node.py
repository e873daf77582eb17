"""The perception node on a real ROS 2 graph (Humble/Jazzy): in-process with an executor, the
CPU profile (lite-fer2013 + OpenCV detector), a real face image on the camera topic.

Skips without rclpy and the built emotion_msgs (colcon build, then `. install/setup.bash`);
head.launch.py through `ros2 launch` is tested in test_head_launch.py.
"""
from __future__ import annotations

import contextlib
import time
import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from emotion_msgs.msg import EmotionStateArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from emotion_perception.images import encode_compressed  # noqa: E402
from emotion_perception.messages import MessageTypes, rgb_to_image_msg, stamp_to_ns  # noqa: E402
from emotion_perception.ros.perception_node import PerceptionNode  # noqa: E402
from ros_graph import PROFILE, lite_profile, ros_context, spinning, wait_for  # noqa: E402,F401

ROSOUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Graph:
    """A private ROS context: the perception node in its own namespace plus a peer test node."""

    def __init__(self, **params):
        self.ns = f"/ep_test_{uuid.uuid4().hex[:8]}"
        self._stack = contextlib.ExitStack()
        self.context = self._stack.enter_context(ros_context())
        # min_hits 1: a face in the first answered frame (test_min_hits... checks the default);
        # a parameter given as None is left not set
        overrides = {"profile": PROFILE, "detector": "opencv", "device": "cpu", "error_log_period_s": 0.1,
                     "min_hits": 1, **params}
        self.node = PerceptionNode(context=self.context, namespace=self.ns, parameter_overrides=[
            Parameter(k, value=v) for k, v in overrides.items() if v is not None])
        self.peer = rclpy.create_node("perception_test_peer", namespace=self.ns, context=self.context)
        self.types = MessageTypes.from_rclpy()
        self.arrays: list = []
        self.logs: list[str] = []
        self.diagnostics: list = []
        self.peer.create_subscription(EmotionStateArray, "emotions", self.arrays.append, 10)
        self.peer.create_subscription(Log, "/rosout", self._on_log, ROSOUT_QOS)
        self.peer.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.raw = self.peer.create_publisher(Image, "image", qos_profile_sensor_data)
        self.compressed = self.peer.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        self._stack.enter_context(spinning(self.context, self.node, self.peer, threads=4))

    def _on_log(self, msg) -> None:
        if msg.name.endswith("perception_node") and self.ns[1:] in msg.name:  # this graph's node
            self.logs.append(msg.msg)

    def close(self) -> None:
        self._stack.close()

    def image(self, rgb, stamp_ns, encoding="rgb8"):
        return rgb_to_image_msg(rgb, self.types.header(stamp_ns, "head_camera"), self.types, encoding)

    def result_for(self, stamp_ns):
        return next((a for a in list(self.arrays) if stamp_to_ns(a.header.stamp) == stamp_ns), None)

    def publish_until_result(self, publisher, msg, stamp_ns, timeout=60.0):
        """Best-effort topics lose messages before discovery: publish until the result is back."""
        return wait_for(lambda: self.result_for(stamp_ns), timeout, f"emotions for stamp {stamp_ns}",
                        tick=lambda: publisher.publish(msg))

    def lifecycle(self, transition_id=None):
        """Change state through the node's lifecycle services (what a lifecycle manager does);
        returns the state label after it."""
        if transition_id is not None:
            change = self.peer.create_client(ChangeState, f"{self.ns}/perception_node/change_state")
            assert change.wait_for_service(10)
            request = ChangeState.Request()
            request.transition.id = transition_id
            future = change.call_async(request)
            wait_for(future.done, 60, "change_state")
            assert future.result().success
        get = self.peer.create_client(GetState, f"{self.ns}/perception_node/get_state")
        assert get.wait_for_service(10)
        future = get.call_async(GetState.Request())
        wait_for(future.done, 10, "get_state")
        return future.result().current_state.label


@pytest.fixture
def graph(lite_profile):
    g = Graph()
    yield g
    g.close()


def activate(g: Graph) -> None:
    assert g.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert g.node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def test_one_face_with_the_image_stamp(graph, astronaut):
    activate(graph)
    stamp = 1_700_000_000 * 10**9 + 123_456_789
    array = graph.publish_until_result(graph.raw, graph.image(astronaut, stamp), stamp)
    assert array.header.frame_id == "head_camera"
    assert len(array.states) == 1
    state = array.states[0]
    assert stamp_to_ns(state.header.stamp) == stamp and state.model_id
    assert abs(sum(state.probabilities) - 1.0) < 1e-3
    assert state.class_name and 0 < state.face_box.width <= astronaut.shape[1]
    assert state.polarity == 255  # the lite profile does not look at the scene
    # /diagnostics names the model profile and why it was chosen
    status = wait_for(lambda: next((s for d in list(graph.diagnostics) for s in d.status
                                    if "perception_node" in s.name), None), 10, "diagnostics")
    values = {kv.key: kv.value for kv in status.values}
    assert values["model profile"] == PROFILE and "requested by name" in values["profile chosen because"]


def test_bad_images_are_logged_and_the_next_good_frame_is_published(graph, astronaut):
    activate(graph)
    graph.publish_until_result(graph.raw, graph.image(astronaut, 10**9), 10**9)  # graph connected

    corrupt = graph.image(astronaut, 2 * 10**9)
    corrupt.data = corrupt.data[:-100]  # step * height no longer matches
    wait_for(lambda: any("dropping an image" in m and "bytes" in m for m in graph.logs), 20,
             "a log line about the corrupt image", tick=lambda: graph.raw.publish(corrupt))
    time.sleep(0.2)  # past the 0.1 s log throttle
    wrong = graph.image(astronaut, 3 * 10**9)
    wrong.encoding = "h264"
    wait_for(lambda: any("unsupported image encoding 'h264'" in m for m in graph.logs), 20,
             "a log line about the wrong encoding", tick=lambda: graph.raw.publish(wrong))

    good = 4 * 10**9
    array = graph.publish_until_result(graph.raw, graph.image(astronaut, good, "bgr8"), good)
    assert len(array.states) == 1
    assert graph.result_for(2 * 10**9) is None and graph.result_for(3 * 10**9) is None


def test_compressed_transport(lite_profile, astronaut):
    g = Graph(image_transport="compressed")
    try:
        activate(g)
        fmt, data = encode_compressed(astronaut, "jpeg")
        msg = CompressedImage(header=g.types.header(5 * 10**9, "head_camera"), format=fmt,
                              data=g.types.byte_array(data))
        array = g.publish_until_result(g.compressed, msg, 5 * 10**9)
        assert len(array.states) == 1
    finally:
        g.close()


def test_min_hits_holds_back_a_new_face(lite_profile, astronaut):
    g = Graph(min_hits=None)  # the table's default, 2
    try:
        activate(g)
        first = g.publish_until_result(g.raw, g.image(astronaut, 1 * 10**9), 1 * 10**9)
        assert list(first.states) == []  # detected once: not confirmed yet, but the frame is answered
        second = g.publish_until_result(g.raw, g.image(astronaut, 2 * 10**9), 2 * 10**9)
        assert len(second.states) == 1
    finally:
        g.close()


def test_lifecycle_transitions(graph, astronaut):
    assert graph.lifecycle() == "unconfigured"
    assert graph.lifecycle(Transition.TRANSITION_CONFIGURE) == "inactive"
    assert graph.node._engine is not None  # configure loaded the model

    inactive_stamp = 7 * 10**9
    msg = graph.image(astronaut, inactive_stamp)
    wait_for(lambda: graph.raw.get_subscription_count() > 0, 10, "the node's image subscription")
    for _ in range(10):
        graph.raw.publish(msg)
        time.sleep(0.1)
    assert graph.result_for(inactive_stamp) is None, "inactive: no processing"

    assert graph.lifecycle(Transition.TRANSITION_ACTIVATE) == "active"
    graph.publish_until_result(graph.raw, graph.image(astronaut, 8 * 10**9), 8 * 10**9)

    assert graph.lifecycle(Transition.TRANSITION_DEACTIVATE) == "inactive"
    assert graph.node._engine is None and graph.node._worker is None  # model memory released

    assert graph.lifecycle(Transition.TRANSITION_ACTIVATE) == "active"  # reloads the model
    graph.publish_until_result(graph.raw, graph.image(astronaut, 9 * 10**9), 9 * 10**9)

    assert graph.lifecycle(Transition.TRANSITION_DEACTIVATE) == "inactive"
    assert graph.lifecycle(Transition.TRANSITION_CLEANUP) == "unconfigured"
    wait_for(lambda: graph.raw.get_subscription_count() == 0, 10, "the subscription to go away")


def test_configure_fails_cleanly_on_an_unknown_profile(lite_profile):
    g = Graph(profile="no-such-profile")
    try:
        assert g.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert g.lifecycle() == "unconfigured"
        assert wait_for(lambda: any("configure failed" in m for m in g.logs), 10, "the reason in the log")
    finally:
        g.close()


def test_person_ids_and_the_forget_persons_service(lite_profile, astronaut, tmp_path):
    """The astronaut gets a person id; the service erases one person, then everyone, and says so;
    with gallery_path the embeddings are in the file after cleanup, and gone after forgetting;
    gallery_threshold sets the gallery's matching distance."""
    from emotion_msgs.srv import ForgetPersons

    from emotion_perception.persons import PersonGallery

    path = tmp_path / "gallery.npz"
    g = Graph(gallery_path=str(path), gallery_retention_s=600.0, gallery_threshold=0.45)
    try:
        activate(g)
        assert g.node._gallery.threshold == 0.45  # the parameter reaches the gallery
        stamp = 1_700_000_000 * 10**9
        state = g.publish_until_result(g.raw, g.image(astronaut, stamp), stamp).states[0]
        assert state.person_id == "person_1" and state.face_id == "face_1"
        assert g.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert g.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS  # the session ends: file written
        assert PersonGallery(path=path).ids() == ["person_1"]

        activate(g)  # a new session reads the file: the astronaut is known again
        stamp += 10**9
        assert g.publish_until_result(g.raw, g.image(astronaut, stamp), stamp).states[0].person_id == "person_1"

        client = g.peer.create_client(ForgetPersons, f"{g.ns}/forget_persons")
        assert client.wait_for_service(10)

        def forget(person_id):
            future = client.call_async(ForgetPersons.Request(person_id=person_id))
            wait_for(future.done, 10, "forget_persons")
            return future.result()

        unknown = forget("person_7")
        assert (unknown.success, unknown.forgotten) == (False, 0) and "person_7" in unknown.message
        done = forget("")
        assert (done.success, done.forgotten) == (True, 1)
        assert PersonGallery(path=path).ids() == []  # erased from the file at once, not at cleanup
    finally:
        g.close()
