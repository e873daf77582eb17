"""ROS 2 adapters: thin rclpy nodes that translate messages to core types and back.

Only the ``*_node`` modules (and ``spin``) import rclpy, and only when they are run. ``params`` and
``diagnostics`` are ROS-free, and so is the message conversion the nodes share with evaluation/
(``emotion_perception.messages``, below both), so the logic the nodes rely on is tested without ROS.
"""
