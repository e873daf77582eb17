"""The node executables (`ros2 run emotion_perception <name>`): a Ctrl-C during start-up ends them.

Loading a node module imports numpy, cv2, torch and rclpy: seconds on a cold start. Python turns
a Ctrl-C into a KeyboardInterrupt raised in whatever Python code runs next, and cv2's native module
runs Python code while it initialises (it imports ``cv2.version``) and discards the error that code
raises: a Ctrl-C that lands while cv2 loads is lost, and the node starts and spins on. So each
executable first makes SIGINT end the process at once, exit status 0 as for a Ctrl-C at any later
moment (nothing exists yet that needs cleaning up; an exit, unlike an exception, cannot be
discarded), then imports its node; ``spin.run`` installs its own handler right before
``rclpy.init``. This module is ROS-free and imports nothing heavy.
"""
from __future__ import annotations

import importlib
import os
import signal


def _exit_at_once(signum, frame) -> None:
    os._exit(0)


def _run_node(module: str) -> None:
    signal.signal(signal.SIGINT, _exit_at_once)
    importlib.import_module(f"{__package__}.{module}").main()


def perception_node() -> None:
    _run_node("perception_node")


def llm_bridge() -> None:
    _run_node("llm_bridge_node")


def eval_node() -> None:
    _run_node("eval_node")
