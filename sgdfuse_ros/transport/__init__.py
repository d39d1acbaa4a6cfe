# Copyright 2026 The sgdfuse_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Middleware transports for the node's logic (:mod:`sgdfuse_ros.node.core`).

- :mod:`.base`: the interface (publishers, subscriptions, timers, clock, ROS name resolution);
- :mod:`.dds`: Cyclone DDS with ROS 2 wire conventions (``sgdfuse live``, no ROS needed);
- :mod:`.memory`: in-process delivery (tests);
- :mod:`sgdfuse_ros.ros.rclpy_transport`: rclpy (the ROS 2 node; lives with the ROS code).
"""

from .base import QosProfile, RELIABLE, SENSOR_DATA, Transport  # noqa: F401
