"""ROS 2 adapters: thin rclpy nodes that translate messages to core types and back.

Only the ``*_node`` modules import rclpy, and only when they are run. ``convert``, ``params`` and
``diagnostics`` are ROS-free, so the logic the nodes rely on is tested without a ROS install.
"""
