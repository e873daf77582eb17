"""How the package's nodes run: Ctrl-C and an external shutdown end a node quietly (ROS layer)."""
from __future__ import annotations

import signal
import threading
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


def spin(node, executor=None) -> None:
    """Spin ``node`` (on ``executor``, default single-threaded) until shutdown; other errors raise."""
    executor = executor or SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Humble: the SIGINT handler shuts the context down from another thread, so the executor
        # can fail to build its next wait set (RCLError "context is not valid") before the
        # KeyboardInterrupt arrives (ros2/rclpy#1166); that is a shutdown, not a crash
        if rclpy.ok():
            raise
    finally:
        executor.shutdown()


def run(make_node: Callable, args=None, make_executor: Callable | None = None,
        before_destroy: Callable | None = None) -> None:
    """A node's ``main``: init, ``make_node()``, spin until Ctrl-C or shutdown, clean up.

    A Ctrl-C at any moment after the imports ends the process quietly and still destroys what was
    made: during start-up (a Ctrl-C right after ``ros2 launch``), while spinning, and again during
    the clean-up (the terminal signals the node's process group and ``ros2 launch`` forwards its
    own SIGINT, so a node often gets two). rclpy's signal handler shuts the context down and then
    calls the Python handler it found; that one is a no-op here once rclpy's handler is in place,
    so no KeyboardInterrupt can land in the middle of start-up or clean-up. rclpy installs its
    handler only after ``rclpy.init`` has made the context (which can take seconds on a cold
    start); a Ctrl-C before then is a plain KeyboardInterrupt that ends ``run`` quietly.
    ``make_executor(node)`` picks the executor;
    ``before_destroy(node)`` runs before the node goes.
    """
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
        signal.signal(signal.SIGINT, _shutdown_by_rclpy)
    _rclpy_handles_sigint.clear()
    try:
        rclpy.init(args=args)
    except KeyboardInterrupt:  # Ctrl-C while the context was being made
        rclpy.try_shutdown()
        return
    _rclpy_handles_sigint.set()
    node = None
    try:
        node = make_node()
        spin(node, make_executor(node) if make_executor else None)
    except Exception:
        # a Ctrl-C during start-up shuts the context down under the node being made (RCLError
        # "context is invalid"): that is the requested shutdown, not a crash
        if rclpy.ok():
            raise
    finally:
        try:
            if node is not None:
                if before_destroy is not None:
                    before_destroy(node)
                node.destroy_node()
        finally:
            rclpy.try_shutdown()


_rclpy_handles_sigint = threading.Event()  # set once rclpy.init has installed rclpy's handler


def _shutdown_by_rclpy(signum, frame) -> None:
    """SIGINT: rclpy's own handler, which runs first, has already shut the context down; before
    rclpy.init returns there is no such handler yet, so stop the usual way."""
    if not _rclpy_handles_sigint.is_set():
        raise KeyboardInterrupt
