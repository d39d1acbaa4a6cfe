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
The small interface between the node's logic and a middleware.

:class:`~sgdfuse_ros.node.core.FusionNodeCore` talks to the outside world only through a
:class:`Transport`; two implement it: rclpy (:mod:`sgdfuse_ros.ros.rclpy_transport`, production)
and Cyclone DDS speaking ROS 2 wire conventions (:mod:`sgdfuse_ros.transport.dds`, for hosts
without ROS). Tests use an in-memory one.

Messages crossing the interface are ``rosbags`` message objects (:mod:`sgdfuse_ros.messages`):
both real transports move ROS 2 CDR bytes and (de)serialise them with ``rosbags``, so the node's
logic sees exactly the same objects whichever middleware carries them.

Topic names follow ROS 2: relative names (``thermal/image_raw``) resolve under the node's
namespace, absolute names (``/diagnostics``) do not.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Dict

RELIABILITIES = ('best_effort', 'reliable')
DURABILITIES = ('volatile', 'transient_local')


@dataclass(frozen=True)
class QosProfile:
    """The QoS settings the node uses (history is always keep-last ``depth``)."""

    reliability: str = 'reliable'
    depth: int = 10
    durability: str = 'volatile'

    def __post_init__(self):
        if self.reliability not in RELIABILITIES:
            raise ValueError(f'reliability must be one of {RELIABILITIES}')
        if self.durability not in DURABILITIES:
            raise ValueError(f'durability must be one of {DURABILITIES}')
        if int(self.depth) < 1:
            raise ValueError('depth must be at least 1')


#: rclcpp/rclpy's sensor data profile: best effort, keep last 5, volatile.
SENSOR_DATA = QosProfile('best_effort', 5)
#: rclpy's default publisher profile: reliable, keep last 10, volatile.
RELIABLE = QosProfile('reliable', 10)


class Publisher(abc.ABC):
    """One output topic."""

    topic: str
    typename: str

    @abc.abstractmethod
    def publish(self, msg: Any) -> None:
        """Send one ``rosbags`` message of this publisher's type."""

    @abc.abstractmethod
    def subscription_count(self) -> int:
        """How many subscriptions are matched right now (0 = nobody listens)."""

    def close(self) -> None:
        """Release the publisher (idempotent)."""


class Subscription(abc.ABC):
    topic: str
    typename: str

    def close(self) -> None:
        """Stop delivering messages (idempotent)."""


class Timer(abc.ABC):

    def cancel(self) -> None:
        """Stop calling back (idempotent)."""


class Transport(abc.ABC):
    """
    Publishers, subscriptions, timers and a clock, in ROS 2 terms.

    Topic names given to ``create_*`` are resolved by :meth:`resolve_topic_name`: expanded
    under the namespace, then remapped (``remaps`` maps resolved names to resolved names).
    """

    namespace: str = '/'
    node_name: str = ''
    remaps: Dict[str, str] = {}

    def resolve_topic_name(self, name: str) -> str:
        full = resolve_topic(name, self.namespace, self.node_name)
        return self.remaps.get(full, full)

    @abc.abstractmethod
    def create_publisher(self, topic: str, typename: str, qos: QosProfile) -> Publisher:
        """``typename`` is a ROS 2 type name such as ``sensor_msgs/msg/Image``."""

    @abc.abstractmethod
    def create_subscription(self, topic: str, typename: str, callback: Callable[[Any], None],
                            qos: QosProfile) -> Subscription:
        """``callback(msg)`` is called with a ``rosbags`` message, one message at a time."""

    @abc.abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback()`` every ``period_s`` seconds until cancelled."""

    @abc.abstractmethod
    def now_ns(self) -> int:
        """Return the middleware's clock in nanoseconds (sim time when use_sim_time is set)."""

    def close(self) -> None:
        """Release everything the transport created."""


def resolve_topic(name: str, namespace: str = '/', node_name: str = '') -> str:
    """ROS 2 name resolution: ``/a`` stays, ``~/x`` is ``<ns>/<node>/x``, ``x`` is ``<ns>/x``."""
    if not name:
        raise ValueError('empty topic name')
    namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
    if name.startswith('/'):
        full = name
    elif name.startswith('~'):
        if not node_name:
            raise ValueError(f'private topic name {name!r} needs a node name')
        full = namespace + '/' + node_name + '/' + name[1:].lstrip('/')
    else:
        full = namespace + '/' + name
    full = '/' + '/'.join(part for part in full.split('/') if part)
    return full


def parse_remaps(rules, namespace: str = '/', node_name: str = '') -> Dict[str, str]:
    """``["from:=to", ...]`` (ROS 2 remapping syntax for topics) -> {resolved: resolved}."""
    remaps = {}
    for rule in rules or ():
        if ':=' not in rule:
            raise ValueError(f'remapping rule {rule!r} is not of the form from:=to')
        source, target = (part.strip() for part in rule.split(':=', 1))
        if not source or not target:
            raise ValueError(f'remapping rule {rule!r} has an empty side')
        remaps[resolve_topic(source, namespace, node_name)] = resolve_topic(target, namespace,
                                                                            node_name)
    return remaps
