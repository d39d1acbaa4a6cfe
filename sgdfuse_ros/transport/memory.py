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
An in-process transport: publishers deliver straight to subscriptions of the same object.

For tests and tools that run the node's logic without any middleware. Delivery is synchronous
(in the publisher's thread). With ``roundtrip=True`` every message goes through ``rosbags``
CDR bytes on the way, so a message that would not serialise fails here as it would on a real
network. Timers do not run by themselves: :meth:`MemoryTransport.fire_timers` calls them.
"""

from __future__ import annotations

from collections import defaultdict
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .base import Publisher, QosProfile, Subscription, Timer, Transport
from .. import messages


class MemoryPublisher(Publisher):

    def __init__(self, transport: 'MemoryTransport', topic: str, typename: str, qos: QosProfile):
        self.transport, self.topic, self.typename, self.qos = transport, topic, typename, qos
        self.closed = False
        self.sent: List[Any] = []  # every message published (kept for inspection)

    def publish(self, msg: Any) -> None:
        if self.closed:
            raise RuntimeError(f'publisher of {self.topic} is closed')
        if getattr(msg, '__msgtype__', self.typename) != self.typename:
            raise TypeError(f'{self.topic} carries {self.typename}, not {msg.__msgtype__}')
        self.sent.append(msg)
        self.transport._deliver(self.topic, self.typename, msg)

    def subscription_count(self) -> int:
        return 0 if self.closed else self.transport.subscription_count(self.topic)

    def close(self) -> None:
        self.closed = True


class MemorySubscription(Subscription):

    def __init__(self, transport, topic, typename, callback, qos):
        self.transport, self.topic, self.typename = transport, topic, typename
        self.callback, self.qos = callback, qos
        self.closed = False

    def close(self) -> None:
        self.closed = True


class MemoryTimer(Timer):

    def __init__(self, period_s: float, callback: Callable[[], None]):
        self.period_s, self.callback = period_s, callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class MemoryTransport(Transport):
    def __init__(self, namespace: str = '/', node_name: str = 'node',
                 remaps: Optional[Dict[str, str]] = None, roundtrip: bool = False,
                 now_ns: Optional[Callable[[], int]] = None):
        self.namespace, self.node_name = namespace, node_name
        self.remaps = dict(remaps or {})
        self.roundtrip = roundtrip
        self._now = now_ns or time.time_ns
        self._lock = threading.RLock()
        self.publishers: Dict[str, List[MemoryPublisher]] = defaultdict(list)
        self.subscriptions: Dict[str, List[MemorySubscription]] = defaultdict(list)
        self.timers: List[MemoryTimer] = []

    def create_publisher(self, topic: str, typename: str, qos: QosProfile) -> MemoryPublisher:
        publisher = MemoryPublisher(self, self.resolve_topic_name(topic), typename, qos)
        with self._lock:
            self.publishers[publisher.topic].append(publisher)
        return publisher

    def create_subscription(self, topic: str, typename: str, callback: Callable[[Any], None],
                            qos: QosProfile) -> MemorySubscription:
        subscription = MemorySubscription(self, self.resolve_topic_name(topic), typename,
                                          callback, qos)
        with self._lock:
            self.subscriptions[subscription.topic].append(subscription)
        return subscription

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> MemoryTimer:
        timer = MemoryTimer(period_s, callback)
        with self._lock:
            self.timers.append(timer)
        return timer

    def now_ns(self) -> int:
        return int(self._now())

    # --- inspection and injection ---------------------------------------------------------------
    def subscription_count(self, topic: str) -> int:
        with self._lock:
            return sum(not s.closed for s in self.subscriptions.get(topic, ()))

    def publish(self, topic: str, msg: Any) -> None:
        """Inject a message as if another node published it on ``topic``."""
        self._deliver(self.resolve_topic_name(topic), msg.__msgtype__, msg)

    def sent(self, topic: str) -> List[Any]:
        """Everything published on ``topic`` by open or closed publishers."""
        with self._lock:
            return [m for p in self.publishers.get(self.resolve_topic_name(topic), ())
                    for m in p.sent]

    def fire_timers(self) -> int:
        with self._lock:
            timers = [t for t in self.timers if not t.cancelled]
        for timer in timers:
            timer.callback()
        return len(timers)

    def _deliver(self, topic: str, typename: str, msg: Any) -> None:
        with self._lock:
            targets = [s for s in self.subscriptions.get(topic, ()) if not s.closed]
        if targets and self.roundtrip:
            msg = messages.deserialize(messages.serialize(msg, typename), typename)
        for subscription in targets:
            if subscription.typename != typename:
                continue  # DDS would not match the two; nothing is delivered
            subscription.callback(msg)
