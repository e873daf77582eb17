"""The perception node against every lifecycle service call in every state (issue 11, defect 1).

rclpy raises out of the change_state service when a transition is not valid in the current state,
which used to end the node's spin ("Transition is not registered", process died). Here every
transition id lifecycle_msgs defines, plus unknown ids and labels, is requested through the
service in each primary state, as a lifecycle manager or a second launch would. The expected
outcome of each pair comes from the ROS 2 managed-node design, not from the node.
"""
from __future__ import annotations

import contextlib
import time
import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from emotion_msgs.msg import EmotionStateArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from emotion_perception.messages import MessageTypes, rgb_to_image_msg, stamp_to_ns  # noqa: E402
from emotion_perception.ros.perception_node import PerceptionNode  # noqa: E402
from ros_graph import PROFILE, lite_profile, ros_context, spinning, wait_for  # noqa: E402,F401

ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Every transition id lifecycle_msgs/Transition defines, plus ids it does not.
TRANSITION_IDS = sorted({v for k, v in vars(Transition).items() if k.startswith("TRANSITION_")} | {9, 100, 255})
# The managed-node design (design.ros2.org/articles/node_lifecycle.html): the transitions a caller
# may request in each primary state, and where each one ends when its callback succeeds.
VALID = {
    "unconfigured": {Transition.TRANSITION_CONFIGURE: "inactive", Transition.TRANSITION_UNCONFIGURED_SHUTDOWN: "finalized"},
    "inactive": {Transition.TRANSITION_CLEANUP: "unconfigured", Transition.TRANSITION_ACTIVATE: "active",
                 Transition.TRANSITION_INACTIVE_SHUTDOWN: "finalized"},
    "active": {Transition.TRANSITION_DEACTIVATE: "inactive", Transition.TRANSITION_ACTIVE_SHUTDOWN: "finalized"},
    "finalized": {},
}
LABELS = ("configure", "cleanup", "activate", "deactivate", "shutdown", "destroy", "no_such_transition")
VALID_LABELS = {"unconfigured": {"configure", "shutdown"}, "inactive": {"cleanup", "activate", "shutdown"},
                "active": {"deactivate", "shutdown"}, "finalized": set()}


class Managed:
    """A perception node in its own namespace, driven only through its lifecycle services."""

    def __init__(self, context, stack: contextlib.ExitStack):
        self.ns = f"/ep_lc_{uuid.uuid4().hex[:8]}"
        self.node = PerceptionNode(context=context, namespace=self.ns, parameter_overrides=[
            Parameter("profile", value=PROFILE), Parameter("detector", value="opencv"),
            Parameter("device", value="cpu")])
        self.peer = rclpy.create_node("lifecycle_test_peer", namespace=self.ns, context=context)
        self.logs: list[str] = []
        self.arrays: list = []
        self.peer.create_subscription(Log, "/rosout", self._on_log, ROSOUT_QOS)
        self.peer.create_subscription(EmotionStateArray, "emotions", self.arrays.append, 10)
        self.images = self.peer.create_publisher(Image, "image", qos_profile_sensor_data)
        self.change = self.peer.create_client(ChangeState, f"{self.ns}/perception_node/change_state")
        self.get = self.peer.create_client(GetState, f"{self.ns}/perception_node/get_state")
        stack.enter_context(spinning(context, self.node, self.peer, threads=3))
        assert self.change.wait_for_service(10) and self.get.wait_for_service(10)

    def _on_log(self, msg) -> None:
        if msg.name.endswith("perception_node") and self.ns[1:] in msg.name:
            self.logs.append(msg.msg)

    def state(self) -> str:
        future = self.get.call_async(GetState.Request())
        wait_for(future.done, 10, "get_state")
        return future.result().current_state.label

    def request(self, transition_id: int = 0, label: str = "") -> bool:
        request = ChangeState.Request()
        request.transition.id, request.transition.label = transition_id, label
        future = self.change.call_async(request)
        wait_for(future.done, 30, f"change_state({transition_id}, {label!r})")
        return future.result().success

    def go(self, transition_id: int, expected: str) -> None:
        assert self.request(transition_id), f"transition {transition_id} refused in {self.state()}"
        assert self.state() == expected

    def refuses_every_invalid_call(self) -> None:
        state = self.state()
        for transition_id in TRANSITION_IDS:
            if transition_id in VALID[state]:
                continue
            assert not self.request(transition_id), f"transition {transition_id} accepted in {state}"
            assert self.state() == state, f"transition {transition_id} moved the node out of {state}"
        for label in LABELS:
            if label in VALID_LABELS[state]:
                continue
            assert not self.request(label=label), f"label {label!r} accepted in {state}"
            assert self.state() == state

    def processes(self, astronaut, stamp_ns: int) -> None:
        types = MessageTypes.from_rclpy()
        msg = rgb_to_image_msg(astronaut, types.header(stamp_ns, "head_camera"), types)
        wait_for(lambda: any(stamp_to_ns(a.header.stamp) == stamp_ns for a in list(self.arrays)), 60,
                 f"emotions for stamp {stamp_ns}", tick=lambda: self.images.publish(msg))


def test_every_transition_in_every_state(lite_profile, astronaut):
    started = time.monotonic()
    with ros_context() as context, contextlib.ExitStack() as stack:
        walk = Managed(context, stack)  # every valid edge but the first two shutdowns, every invalid call
        walk.refuses_every_invalid_call()                              # unconfigured
        walk.go(Transition.TRANSITION_CONFIGURE, "inactive")
        walk.refuses_every_invalid_call()                              # inactive
        walk.go(Transition.TRANSITION_ACTIVATE, "active")
        walk.refuses_every_invalid_call()                              # active
        walk.processes(astronaut, 10**9)  # all those refusals left a working node
        walk.go(Transition.TRANSITION_DEACTIVATE, "inactive")
        walk.go(Transition.TRANSITION_CLEANUP, "unconfigured")         # reconfigure: cleanup, configure, activate
        walk.go(Transition.TRANSITION_CONFIGURE, "inactive")
        assert walk.request(label="activate") and walk.state() == "active"
        walk.processes(astronaut, 2 * 10**9)
        walk.go(Transition.TRANSITION_ACTIVE_SHUTDOWN, "finalized")
        walk.refuses_every_invalid_call()                              # finalized
        wait_for(lambda: any("refused lifecycle transition activate (id 3) in state finalized" in m for m in walk.logs),
                 10, "the logged reason for a refused transition")

        unconfigured = Managed(context, stack)
        unconfigured.go(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN, "finalized")
        inactive = Managed(context, stack)
        inactive.go(Transition.TRANSITION_CONFIGURE, "inactive")
        assert inactive.request(label="shutdown") and inactive.state() == "finalized"
    print(f"lifecycle matrix: {len(TRANSITION_IDS)} ids x 4 states in {time.monotonic() - started:.1f} s")
