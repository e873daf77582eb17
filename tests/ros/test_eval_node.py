"""eval_node on a real ROS 2 graph: images and results in, the offline report out on request.

Skips without rclpy and the built emotion_msgs (source the workspace: `. install/setup.bash`).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")
pytest.importorskip("std_srvs.srv", reason="needs std_srvs")

from builtin_interfaces.msg import Time  # noqa: E402
from emotion_msgs.msg import EmotionState, EmotionStateArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, RegionOfInterest  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from emotion_perception.evaluation.bags import write_image_bag  # noqa: E402
from emotion_perception.messages import stamp_to_ns  # noqa: E402
from emotion_perception.ros.eval_node import EvalNode  # noqa: E402
from emotion_perception.types import Frame  # noqa: E402
from ros_graph import ros_context, spinning, wait_for  # noqa: E402

T0_SEC = 1_700_000_000
PERIOD_NS = 100_000_000
# frame i: predicted class (None = no face); frame 4 gets no result (dropped upstream)
PREDICTED = [0, 0, 0, None, 0, 1, 1, 2, 2, 1]
DROPPED = {4}


def stamp(i: int) -> Time:
    return Time(sec=T0_SEC + (i * PERIOD_NS) // 1_000_000_000, nanosec=(i * PERIOD_NS) % 1_000_000_000)


def array(i: int, cls) -> EmotionStateArray:
    msg = EmotionStateArray()
    msg.header.stamp = stamp(i)
    if cls is not None:
        state = EmotionState()
        state.header.stamp = stamp(i)
        state.face_id = "face_1"
        state.face_box = RegionOfInterest(x_offset=4, y_offset=4, width=20, height=20)
        probs = [0.02] * 7
        probs[cls] = 0.88
        state.class_id, state.confidence, state.probabilities = cls, 0.88, probs
        state.polarity = 255
        state.frames_used, state.model_id = 1, "test"
        msg.states = [state]
    return msg


@pytest.fixture
def graph(tmp_path):
    """A factory: the eval node with extra parameters, and a peer node, spinning."""
    labels = tmp_path / "labels.csv"
    labels.write_text("0,5,happy\n5,10,sad\n")
    with ros_context() as context, contextlib.ExitStack() as stack:
        def start(**params):
            node = EvalNode(context=context, parameter_overrides=[
                Parameter("labels_file", value=str(labels)),
                Parameter("image_topic", value="camera/image_raw"),
                Parameter("output_dir", value=str(tmp_path / "report")),
                *(Parameter(k, value=v) for k, v in params.items()),
            ])
            peer = rclpy.create_node("eval_test_peer", context=context)
            stack.enter_context(spinning(context, node, peer))
            return node, peer
        yield start


def play(node, peer, lost=frozenset()) -> dict:
    """Publish the recording's frames (but ``lost``) and results, then ask for the report."""
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    images = peer.create_publisher(Image, "camera/image_raw", qos)
    results = peer.create_publisher(EmotionStateArray, "emotions", qos)
    wait_for(lambda: images.get_subscription_count() and results.get_subscription_count(), what="discovery")
    for i, cls in enumerate(PREDICTED):
        if i in lost:
            continue
        image = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12))
        image.header.stamp = stamp(i)
        images.publish(image)
        if i not in DROPPED:
            results.publish(array(i, cls))
    wait_for(lambda: node.evaluator.count == len(set(range(len(PREDICTED))) - DROPPED - lost), what="all results")

    client = peer.create_client(Trigger, "eval_node/write_report")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    wait_for(future.done, what="the write_report reply")
    assert future.result().success, future.result().message
    return json.loads((Path(node.evaluator.values["output_dir"]) / "report.json").read_text())


def test_eval_node_writes_the_offline_report(graph, tmp_path):
    report = play(*graph())
    # happy: frames 0-2 right, 3 no face, 4 dropped; sad: 5, 6, 9 right, 7, 8 neutral
    assert report["war"] == pytest.approx(6 / 8) and report["uar"] == pytest.approx(0.8)
    assert report["dropped_frames"] == 1 and report["missed_faces"] == 1
    assert (tmp_path / "report" / "timeline.png").is_file()


def test_frames_lost_before_discovery_are_dropped_not_a_shift(graph, tmp_path):
    """With the played bag as `recording`, frames 0 and 1 that never arrived are dropped frames
    0 and 1 of the recording, and the labels still fall on the right frames (issue 11, defect 4)."""
    recording = tmp_path / "rec"
    write_image_bag((Frame(np.zeros((2, 2, 3), np.uint8), stamp_to_ns(stamp(i)), "camera")
                     for i in range(len(PREDICTED))), recording)
    report = play(*graph(recording=str(recording)), lost={0, 1})
    # happy: frame 2 right, 3 no face, 0, 1, 4 dropped; sad: 5, 6, 9 right, 7, 8 neutral
    assert (report["frames"], report["dropped_frames"], report["missed_faces"]) == (10, 3, 1)
    assert report["war"] == pytest.approx(4 / 6) and report["uar"] == pytest.approx(0.8)
