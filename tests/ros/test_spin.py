"""ros/spin.run in-process: a Ctrl-C that comes while rclpy.init is still making the context (a
cold start can take seconds there, before rclpy installs its own handler) ends run quietly."""
from __future__ import annotations

import os
import signal

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")

from emotion_perception.ros import spin  # noqa: E402


def test_ctrl_c_while_rclpy_init_runs_ends_run_without_making_the_node(monkeypatch):
    real_init = rclpy.init

    def init_interrupted(args=None):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs as soon as this call returns
        real_init(args=args)

    def make_node():
        raise AssertionError("the node must not be made after a Ctrl-C during rclpy.init")

    monkeypatch.setattr(rclpy, "init", init_interrupted)
    previous = signal.getsignal(signal.SIGINT)
    try:
        spin.run(make_node)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not rclpy.ok()
