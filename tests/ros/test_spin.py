"""ros/spin.run in-process: a Ctrl-C at any moment of a node's life ends run quietly and in order
(node destroyed, then the context shut down), never a traceback and never a hang."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")

from emotion_perception.ros import spin  # noqa: E402


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def test_ctrl_c_while_rclpy_init_runs_ends_run_without_making_the_node(monkeypatch):
    """A cold start can spend seconds in rclpy.init, before any node exists."""
    real_init = rclpy.init

    def init_interrupted(**kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        real_init(**kwargs)

    def make_node():
        raise AssertionError("the node must not be made after a Ctrl-C during rclpy.init")

    monkeypatch.setattr(rclpy, "init", init_interrupted)
    spin.run(make_node)
    assert not rclpy.ok()


class Made:
    """A node factory that records what run did with its node."""

    def __init__(self, signal_during_make=None):
        self.signal_during_make = signal_during_make
        self.node = None
        self.destroyed_with_context_ok = None

    def __call__(self):
        self.node = rclpy.create_node("spin_test_node")
        real_destroy = self.node.destroy_node

        def destroy_node():
            self.destroyed_with_context_ok = rclpy.ok()
            return real_destroy()
        self.node.destroy_node = destroy_node
        if self.signal_during_make is not None:
            os.kill(os.getpid(), self.signal_during_make)
            time.sleep(0.3)  # time enough for a signal thread to shut the context down under us
        return self.node


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_node_is_made_destroys_it_before_the_shutdown(signum):
    """rclpy's own handler shut the context down under the node being made: the executor then
    failed half built and rclpy printed "Exception ignored ... no attribute '_sigint_gc'"."""
    made = Made(signal_during_make=signum)
    spin.run(made)
    assert made.destroyed_with_context_ok is True and not rclpy.ok()


def test_ctrl_c_while_spinning_ends_run_at_once():
    made = Made()
    main = threading.get_ident()
    timer = threading.Timer(1.0, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    started = time.monotonic()
    spin.run(made)
    assert time.monotonic() - started < 1.0 + 2 * spin.STOP_POLL_S + 0.5
    assert made.destroyed_with_context_ok is True and not rclpy.ok()


def test_a_shutdown_from_elsewhere_ends_run():
    """rclpy.shutdown by other code (or a signal thread) that does not wake the executor."""
    made = Made()
    timer = threading.Timer(1.0, lambda: rclpy.get_default_context().handle.shutdown())
    timer.start()
    started = time.monotonic()
    spin.run(made)
    assert time.monotonic() - started < 1.0 + 2 * spin.STOP_POLL_S + 0.5
    assert not rclpy.ok()
