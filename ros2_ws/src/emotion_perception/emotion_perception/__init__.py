"""Scene-aware facial emotion perception for robots.

Everything in this package except ``emotion_perception.ros`` is ROS-free: it never imports rclpy,
so every computation is testable without a ROS installation.
"""

__version__ = "0.1.0"
