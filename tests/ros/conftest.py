"""tests/ros: keep every ROS 2 graph these tests make on this machine and to this test run.

DDS discovery stays on the loopback interface, and the run picks its own ROS domain unless one is
set, so two test runs on one machine (or a robot's graph on domain 0) never see each other's nodes.
Read by rclpy.init, so it is set here, before any test creates a context.
"""
from __future__ import annotations

import os
import random

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Iron and later
if os.environ.get("ROS_DISTRO") == "humble":
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble's spelling of the same
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
