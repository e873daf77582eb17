"""The perception node's camera link on a real ROS 2 graph (issue 24): the subscription's
reliability follows the camera's (image_qos auto), transport loss shows in /diagnostics, and
autostart brings the node up by itself. The pure logic is tested in tests/test_camera_link.py.
"""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ros_graph import lite_profile, wait_for  # noqa: E402,F401
from test_perception_node import Graph, activate  # noqa: E402

RELIABLE_CAMERA = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
TOPIC = "cam"  # Graph's own best-effort publishers are on `image`
PERIOD_NS = 33_333_333


def node_subscription(g: Graph) -> list[str]:
    """Reliability of the node's subscriptions to the camera topic, as the graph sees them."""
    return [i.qos_profile.reliability.name.lower() for i in g.peer.get_subscriptions_info_by_topic(f"{g.ns}/{TOPIC}")
            if i.node_name == "perception_node"]


def camera_status(g: Graph) -> dict:
    for array in reversed(list(g.diagnostics)):
        for status in array.status:
            if g.ns in status.name and ": camera " in status.name:
                return {"message": status.message, **{kv.key: kv.value for kv in status.values}}
    return {}


@pytest.fixture
def graph(lite_profile):
    graphs = []

    def make(**params):
        graphs.append(Graph(image_topics=[TOPIC], **params))
        return graphs[-1]

    yield make
    for g in graphs:
        g.close()


def test_auto_follows_a_reliable_camera_and_a_best_effort_one_joining(graph, astronaut):
    g = graph()
    camera = g.peer.create_publisher(Image, TOPIC, RELIABLE_CAMERA)
    wait_for(lambda: g.node.get_publishers_info_by_topic(f"{g.ns}/{TOPIC}"), 10, "the camera's discovery")
    activate(g)
    assert node_subscription(g) == ["reliable"]
    g.publish_until_result(camera, g.image(astronaut, 10**9), 10**9)
    status = wait_for(lambda: camera_status(g).get("subscription reliability") == "reliable" and camera_status(g),
                      10, "diagnostics with the subscription's reliability")
    assert status["reliability chosen because"] == "auto: all 1 publisher(s) reliable"

    g.peer.create_publisher(Image, TOPIC, qos_profile_sensor_data)  # a best-effort camera joins
    wait_for(lambda: node_subscription(g) == ["best_effort"], 10, "the node to subscribe best effort")
    wait_for(lambda: any("subscription now best_effort (auto: 1 of 2 publisher(s) best effort)" in m for m in g.logs),
             10, "the node's log line about it")
    g.publish_until_result(camera, g.image(astronaut, 2 * 10**9), 2 * 10**9)  # the reliable one still gets through


def test_auto_without_a_camera_subscribes_best_effort_then_follows_a_reliable_one(graph, astronaut):
    g = graph()
    activate(g)
    assert node_subscription(g) == ["best_effort"]
    camera = g.peer.create_publisher(Image, TOPIC, RELIABLE_CAMERA)
    wait_for(lambda: node_subscription(g) == ["reliable"], 10, "the node to subscribe reliably")
    g.publish_until_result(camera, g.image(astronaut, 10**9), 10**9)


def test_explicit_reliable_is_kept_and_an_incompatible_camera_is_named(graph):
    g = graph(image_qos="reliable")
    activate(g)
    g.peer.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    wait_for(lambda: any("offers QoS incompatible" in m and "set image_qos to auto or best_effort" in m
                         for m in g.logs), 10, "the incompatible-QoS warning")
    assert node_subscription(g) == ["reliable"]


def test_frames_missing_between_stamps_are_reported_as_lost_before_the_node(graph, astronaut):
    """A 30 Hz camera of which every third frame never arrives: the node counts each image it got,
    and /diagnostics says a third of the camera's frames were lost before it (hand-worked: frames
    0..89 minus 2, 5, 8, ...: 60 received, 29 intervals of two periods -> 29 lost of 89 sent)."""
    g = graph(diag_input_loss_warn_ratio=0.1)
    camera = g.peer.create_publisher(Image, TOPIC, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    wait_for(lambda: g.node.get_publishers_info_by_topic(f"{g.ns}/{TOPIC}"), 10, "the camera's discovery")
    activate(g)
    wait_for(lambda: camera.get_subscription_count() == 1, 10, "the node's subscription")
    msg = g.image(astronaut[:64, :64].copy(), 0)
    for n in range(90):
        if n % 3 == 2:
            continue
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(10**12 + n * PERIOD_NS, 10**9)
        camera.publish(msg)
        # one at a time: the node's reader keeps the last 5, and a loaded machine stalls callbacks
        sent = (n + 1) - (n + 1) // 3
        wait_for(lambda: g.node._monitor.snapshot().received >= sent, 10, f"image {n} counted")
    status = wait_for(lambda: camera_status(g).get("frames received") == "60" and camera_status(g), 20,
                      "diagnostics after the 60 images")
    assert status["camera rate from stamps (Hz)"] == "30.0"
    assert status["recent input loss ratio"] == f"{29 / 89:.2f}"
    assert "33% of the camera's recent frames lost before the node" in status["message"]


def test_autostart_configures_and_activates_the_node_by_itself(graph, astronaut):
    g = graph(autostart=True)
    wait_for(lambda: g.lifecycle() == "active", 60, "the node to activate itself")
    camera = g.peer.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    g.publish_until_result(camera, g.image(astronaut, 10**9), 10**9)
