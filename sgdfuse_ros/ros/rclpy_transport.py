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
The rclpy implementation of :class:`sgdfuse_ros.transport.base.Transport`.

Messages cross rclpy as CDR bytes: subscriptions are created with ``raw=True`` and the bytes
deserialised with ``rosbags``; publishers publish the ``rosbags`` serialisation (rclpy
publishes ``bytes`` as a serialized message). The node's logic therefore sees exactly the same
message objects as with the DDS transport, and no per-field Python copies of image data are made.

ROS idioms: the node's outputs are lifecycle publishers (``create_lifecycle_publisher``: they
publish only while the node is active), ``/diagnostics`` is a plain publisher (it reports the
inactive state too), and every publisher and subscription takes the standard QoS overrides
(``QoSOverridingOptions.with_default_policies()``): history, depth and reliability can be set
per topic with read-only ``qos_overrides.<resolved topic>.<publisher|subscription>.<policy>``
parameters, on top of the defaults the ``qos.*`` parameters give.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

from .. import messages
from ..transport.base import Publisher, QosProfile, Subscription, Timer, Transport


def message_class(typename: str):
    """``sensor_msgs/msg/Image`` -> the rclpy message class ``sensor_msgs.msg.Image``."""
    package, kind, name = typename.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def qos_overriding_options():
    """Let users override history, depth and reliability per topic (``qos_overrides.*``)."""
    return QoSOverridingOptions.with_default_policies()


def rclpy_qos(profile: QosProfile):
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=int(profile.depth),
        reliability=(ReliabilityPolicy.BEST_EFFORT if profile.reliability == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.VOLATILE if profile.durability == 'volatile'
                    else DurabilityPolicy.TRANSIENT_LOCAL))


class RclpyPublisher(Publisher):
    """
    One output; ``managed`` makes it a lifecycle publisher (silent unless the node is active).

    Only a node with ``create_lifecycle_publisher`` (``rclpy.lifecycle.LifecycleNode``) can
    hold managed publishers; on a plain node they are plain publishers.
    """

    def __init__(self, node, topic: str, typename: str, qos: QosProfile, managed: bool = False):
        self._node = node
        self.typename = typename
        self.managed = bool(managed and hasattr(node, 'create_lifecycle_publisher'))
        create = node.create_lifecycle_publisher if self.managed else node.create_publisher
        self._publisher = create(message_class(typename), topic, rclpy_qos(qos),
                                 qos_overriding_options=qos_overriding_options())
        self.topic = self._publisher.topic_name

    def publish(self, msg: Any) -> None:
        self._publisher.publish(messages.serialize(msg, self.typename))

    def subscription_count(self) -> int:
        return int(self._publisher.get_subscription_count())

    def close(self) -> None:
        if self._publisher is not None:
            if self.managed:
                self._node.destroy_lifecycle_publisher(self._publisher)
            else:
                self._node.destroy_publisher(self._publisher)
            self._publisher = None


class RclpySubscription(Subscription):
    def __init__(self, node, topic: str, typename: str, callback: Callable[[Any], None],
                 qos: QosProfile):
        self._node = node
        self.typename = typename
        self._callback = callback
        self._subscription = node.create_subscription(
            message_class(typename), topic, self._on_bytes, rclpy_qos(qos), raw=True,
            qos_overriding_options=qos_overriding_options())
        self.topic = self._subscription.topic_name

    def _on_bytes(self, data: bytes) -> None:
        self._callback(messages.deserialize(data, self.typename))

    def close(self) -> None:
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None


class RclpyTimer(Timer):

    def __init__(self, node, period_s: float, callback: Callable[[], None]):
        self._node = node
        self._timer = node.create_timer(float(period_s), callback)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._node.destroy_timer(self._timer)
            self._timer = None


class RclpyTransport(Transport):
    """Publishers, subscriptions and timers of one rclpy node (names resolve as ROS does)."""

    def __init__(self, node):
        self.node = node
        self.namespace = node.get_namespace()
        self.node_name = node.get_name()

    def resolve_topic_name(self, name: str) -> str:
        return self.node.resolve_topic_name(name)  # expansion and the node's remap rules

    def create_publisher(self, topic: str, typename: str, qos: QosProfile) -> RclpyPublisher:
        # the fused outputs follow the lifecycle; /diagnostics also reports an inactive node
        managed = typename != messages.DIAGNOSTIC_ARRAY
        return RclpyPublisher(self.node, topic, typename, qos, managed=managed)

    def create_subscription(self, topic: str, typename: str, callback: Callable[[Any], None],
                            qos: QosProfile) -> RclpySubscription:
        return RclpySubscription(self.node, topic, typename, callback, qos)

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> RclpyTimer:
        return RclpyTimer(self.node, period_s, callback)

    def now_ns(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)  # sim time with use_sim_time
