"""How the package's nodes run: Ctrl-C and an external shutdown end a node quietly (ROS layer)."""
from __future__ import annotations

import signal
import threading
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

# How long the executor may wait before run looks for a stop request again: the longest a Ctrl-C
# waits to be acted on while the node is idle.
STOP_POLL_S = 0.2


def run(make_node: Callable, args=None, make_executor: Callable | None = None,
        before_destroy: Callable | None = None) -> None:
    """A node's ``main``: init, ``make_node()``, spin until Ctrl-C, SIGTERM or shutdown, clean up.

    A stop request (SIGINT, SIGTERM) at any moment ends the process quietly, in order: the node is
    destroyed (after ``before_destroy(node)``), then the context shut down. The handler only notes
    the request; run acts on it after ``rclpy.init``, after ``make_node()`` and between executor
    waits. rclpy's own signal handlers stay out (``SignalHandlerOptions.NO``): they shut the
    context down from another thread, under a node still being made (the executor then fails half
    built and rclpy prints a traceback) or just after waking the executor, which can then look
    before the shutdown lands and wait again with nothing left to wake it. A second signal (the terminal signals the node's
    process group and ``ros2 launch`` forwards its own) changes nothing, also once run has returned:
    SIGINT is ignored from then on, because Python resets the handlers it set to the default
    (end the process) early in its shutdown, while tearing down torch and the ROS libraries can
    still take seconds, and launch reported the node as died (exit code -2).
    ``make_executor(node)`` picks the executor (default single-threaded).
    """
    _stop_requested.clear()
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
        signal.signal(signal.SIGINT, _request_stop)
        signal.signal(signal.SIGTERM, _request_stop)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = None
    try:
        if _stop_requested.is_set():
            return
        node = make_node()
        executor = make_executor(node) if make_executor else SingleThreadedExecutor()
        executor.add_node(node)
        while not _stop_requested.is_set() and executor.context.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:
        pass
    except RuntimeError:
        # Humble: an external shutdown can make the executor fail to build its next wait set
        # (RCLError "context is not valid", ros2/rclpy#1166); that is a shutdown, not a crash
        if rclpy.ok():
            raise
    finally:
        try:
            if executor is not None:
                executor.shutdown()
            if node is not None:
                if before_destroy is not None:
                    before_destroy(node)
                node.destroy_node()
        finally:
            rclpy.try_shutdown()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)


_stop_requested = threading.Event()


def _request_stop(signum, frame) -> None:
    """SIGINT / SIGTERM: note it; run stops at its next look (raising here could land anywhere)."""
    _stop_requested.set()
