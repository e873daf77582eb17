"""How the package's nodes spin: Ctrl-C and an external shutdown end a node quietly (ROS layer)."""
from __future__ import annotations

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
