"""Middleware transports for the node's logic (:mod:`sgdfuse_ros.node_core`).

- :mod:`.base`: the interface (publishers, subscriptions, timers, clock, ROS name resolution);
- :mod:`.dds`: Cyclone DDS with ROS 2 wire conventions (``sgdfuse live``, no ROS needed);
- :mod:`.memory`: in-process delivery (tests);
- :mod:`sgdfuse_ros.ros.rclpy_transport`: rclpy (the ROS 2 node; lives with the ROS code).
"""

from .base import RELIABLE, SENSOR_DATA, QosProfile, Transport  # noqa: F401
