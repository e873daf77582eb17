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

    A Ctrl-C at any moment ends the process quietly and still destroys what was made: during
    start-up (a Ctrl-C right after ``ros2 launch``), while spinning, and a second one during the
    clean-up or the interpreter's exit (the terminal signals the node's process group and
    ``ros2 launch`` forwards its own SIGINT, so a node often gets two): once the node is ending,
    SIGINT is ignored for the rest of the process (SIGTERM and SIGKILL still end it).
    ``make_executor(node)`` picks the executor; ``before_destroy(node)`` runs before the node goes.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        spin(node, make_executor(node) if make_executor else None)
    except KeyboardInterrupt:
        pass
    finally:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if node is not None:
                if before_destroy is not None:
                    before_destroy(node)
                node.destroy_node()
        finally:
            rclpy.try_shutdown()
