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
When the launch tests may start counting: the waiting logic of ros_probe, without ROS imports.

A publisher that sees its subscription matched (``get_subscription_count() > 0``) does not know
whether the subscriber has matched it back: with Cyclone DDS on loopback, a reliable publisher's
first message is lost when the subscriber's side of the match is not through yet. Nothing in the
ROS graph shows the subscriber's side, so the probe

1. waits until the fusion node's own subscription of each camera topic is in the graph
   (node name and namespace) and the probe's publisher counts a matched subscription, then
2. shakes hands: it sends priming pairs, a fresh one every ``resend_every`` seconds, until one
   comes back fused. A fused output means the node received both cameras; from then on a
   reliable pair sent in lockstep is fused (what the node guarantees), and the tests assert
   only on the pairs sent after the handshake.

The graph, the clock and the spinning are parameters, so test/ros/test_ros_sync.py checks this
logic against fakes without ROS. Imported by the launch tests through ros_probe, so it needs
only the standard library (``launch_test FILE`` adds no pytest paths).
"""

import time


def split_node_name(full_name: str):
    """'/ns/sub/node' -> ('node', '/ns/sub'); '/node' or 'node' -> ('node', '/')."""
    namespace, _, name = ('/' + full_name.lstrip('/')).rpartition('/')
    if not name:
        raise ValueError(f'not a node name: {full_name!r}')
    return name, namespace or '/'


def node_subscribes(graph, topic: str, node_name: str, namespace: str) -> bool:
    """Tell whether the node ``namespace/node_name`` subscribes ``topic`` in the graph."""
    return any(info.node_name == node_name and info.node_namespace == namespace
               for info in graph.get_subscriptions_info_by_topic(topic))


def subscription_ready(graph, publisher, topic: str, node_name: str, namespace: str) -> bool:
    """Tell whether the node subscribes ``topic`` and ``publisher`` counts a matched reader."""
    return (node_subscribes(graph, topic, node_name, namespace) and
            publisher.get_subscription_count() > 0)


def wait_until(condition, timeout: float, spin_once, clock=time.monotonic) -> bool:
    """Spin until ``condition()``; False once ``timeout`` seconds of ``clock`` have passed."""
    deadline = clock() + timeout
    while not condition():
        if clock() > deadline:
            return False
        spin_once()
    return True


def handshake(send, delivered, spin_once, timeout: float = 60.0, resend_every: float = 2.0,
              clock=time.monotonic):
    """
    Call ``send(i)`` (i = 0, 1, ...) until ``delivered()``; return the number of sends.

    A new send goes out every ``resend_every`` seconds while nothing came back (the earlier
    ones may have been lost before the subscriber matched). Return None after ``timeout``.
    """
    deadline = clock() + timeout
    sends = 0
    while True:
        if clock() > deadline:
            return None
        send(sends)
        sends += 1
        resend_at = min(clock() + resend_every, deadline)
        while clock() <= resend_at:
            if delivered():
                return sends
            spin_once()
        if delivered():
            return sends


def priming_stamps(first_stamp: float, count: int = 80, step: float = 0.01):
    """
    Stamps of priming pairs: increasing, all before ``first_stamp`` (the first pair counted).

    The node pairs stamps in order (an older stamp than one already paired is late) and a jump
    back by more than 1 s restarts pairing: the priming pairs stay within the second before the
    counted ones, and end at least 0.1 s before them (more than sync.slop).
    """
    start = first_stamp - 0.1 - count * step
    return [round(start + i * step, 6) for i in range(count)]
