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
Cyclone DDS transport speaking ROS 2 wire conventions, for hosts without ROS 2.

What a ROS 2 graph on the same network sees (rmw_cyclonedds_cpp conventions):

- topic ``/ns/thermal/image_raw`` is the DDS topic ``rt/ns/thermal/image_raw``;
- its type is ``sensor_msgs::msg::dds_::Image_`` with the message's fields
  (:mod:`sgdfuse_ros.transport.dds_types`), data representation XCDR1 (plain CDR,
  little-endian), keyless;
- QoS maps one to one: reliability, keep-last depth, durability.

The data path never uses cyclonedds' Python serialiser (tens of milliseconds per image): a
publisher serialises with ``rosbags`` (the same bytes ROS 2 sends;
:mod:`sgdfuse_ros.messages`)
and hands the bytes to Cyclone's C writer; a subscription takes the received bytes and
deserialises them with ``rosbags``.

All subscription callbacks run on one dispatcher thread (like a single-threaded executor), which
waits on a DDS WaitSet; timers run on their own threads.

Configuration of Cyclone itself (network interfaces, discovery peers) comes from
``CYCLONEDDS_URI`` as usual; :func:`localhost_config` gives a loopback-only configuration
(the equivalent of ``ROS_LOCALHOST_ONLY=1``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.core import (DDSException, GuardCondition, InstanceState, ReadCondition,
                             SampleState, ViewState, WaitSet)
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from .base import Publisher, QosProfile, Subscription, Timer, Transport
from .dds_types import idl_type
from .. import messages
from ..errors import ConfigError

log = logging.getLogger('sgdfuse_ros.dds')

MAX_DOMAIN_ID = 232  # highest id whose RTPS ports fit in 16 bits with the default port mapping


def dds_topic_name(ros_topic: str) -> str:
    """``/ns/thermal/image_raw`` -> ``rt/ns/thermal/image_raw``."""
    if not ros_topic.startswith('/'):
        raise ValueError(f'expected a fully qualified ROS topic name, got {ros_topic!r}')
    return 'rt' + ros_topic


def localhost_config(max_participants: int = 32) -> str:
    """
    Cyclone DDS XML for loopback only: no multicast, unicast discovery to 127.0.0.1.

    Large messages are cut into big fragments (loopback has a 64 KiB MTU), which keeps the
    packet count of a 640x512 image low.
    """
    return (
        '<CycloneDDS><Domain Id="any">'
        '<General><Interfaces><NetworkInterface address="127.0.0.1" multicast="false"/>'
        '</Interfaces><AllowMulticast>false</AllowMulticast>'
        '<MaxMessageSize>65000B</MaxMessageSize></General>'
        '<Discovery><ParticipantIndex>auto</ParticipantIndex>'
        f'<MaxAutoParticipantIndex>{int(max_participants)}</MaxAutoParticipantIndex>'
        '<Peers><Peer Address="127.0.0.1"/></Peers></Discovery>'
        '<Internal><SocketReceiveBufferSize min="default" max="4MB"/></Internal>'
        '</Domain></CycloneDDS>'
    )


def pad_cdr(data: bytes) -> bytes:
    """
    Pad CDR bytes to a multiple of 4, recording the padding in the encapsulation options.

    DDS sends serialized payloads in 4-byte units; XTypes (7.6.3.1.2) puts the number of
    padding bytes in the two lowest bits of the options field, so a reader recovers the exact
    bytes (:func:`unpad_cdr`).
    """
    padding = (-len(data)) % 4
    if not padding:
        return bytes(data)
    return bytes(data[:3]) + bytes([(data[3] & 0xFC) | padding]) + bytes(data[4:]) + \
        b'\0' * padding


def unpad_cdr(data: bytes) -> bytes:
    """Return the serialized message without the padding :func:`pad_cdr` (or a writer) added."""
    data = bytes(data)
    padding = data[3] & 0x03 if len(data) >= 4 else 0
    if not padding:
        return data
    return data[:3] + bytes([data[3] & 0xFC]) + data[:-padding][4:]


def dds_qos(profile: QosProfile):

    reliability = (Policy.Reliability.BestEffort if profile.reliability == 'best_effort'
                   else Policy.Reliability.Reliable(duration(milliseconds=100)))
    durability = (Policy.Durability.Volatile if profile.durability == 'volatile'
                  else Policy.Durability.TransientLocal)
    return Qos(reliability, Policy.History.KeepLast(int(profile.depth)), durability,
               Policy.DataRepresentation(use_cdrv0_representation=True))


_DOMAINS: Dict[int, list] = {}  # domain id -> [Domain, users]
_DOMAINS_LOCK = threading.Lock()


def _acquire_domain(domain_class, domain_id: int, config_xml: str):
    with _DOMAINS_LOCK:
        entry = _DOMAINS.get(domain_id)
        if entry is None:
            entry = _DOMAINS[domain_id] = [domain_class(domain_id, config_xml), 0]
        entry[1] += 1
        return entry[0]


def _release_domain(domain_id: int) -> None:
    with _DOMAINS_LOCK:
        entry = _DOMAINS.get(domain_id)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _DOMAINS[domain_id]
            _delete(entry[0])


def _delete(entity) -> None:
    """Delete a cyclonedds entity now (its Python object may live on)."""
    try:
        entity.__del__()
    except Exception:  # already deleted with its parent
        pass


class DdsPublisher(Publisher):

    def __init__(self, transport: 'DdsTransport', topic: str, typename: str, qos: QosProfile):
        self.topic, self.typename = topic, typename
        self._writer = DataWriter(transport.participant, transport.topic(topic, typename),
                                  dds_qos(qos))
        self._closed = False

    def publish(self, msg: Any) -> None:
        self.publish_raw(messages.serialize(msg, self.typename))

    def publish_raw(self, data: bytes) -> None:
        """Send CDR bytes (with their 4-byte encapsulation header) as they are."""
        if self._closed:
            raise RuntimeError(f'publisher of {self.topic} is closed')
        ret = ddspy_write(self._writer._ref, pad_cdr(data))
        if ret < 0:
            raise DDSException(ret, f'while writing to {self.topic}')

    def subscription_count(self) -> int:
        if self._closed:
            return 0
        return int(self._writer.get_publication_matched_status().current_count)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _delete(self._writer)


class DdsSubscription(Subscription):
    def __init__(self, transport: 'DdsTransport', topic: str, typename: str,
                 callback: Callable[[Any], None], qos: QosProfile, raw: bool):

        self.topic, self.typename = topic, typename
        self.callback, self.raw = callback, raw
        self.depth = int(qos.depth)
        self.reader = DataReader(transport.participant, transport.topic(topic, typename),
                                 dds_qos(qos))
        self.mask = SampleState.NotRead | ViewState.Any | InstanceState.Any
        self.condition = ReadCondition(self.reader, self.mask)
        self.closed = False
        self._transport = transport

    def publisher_count(self) -> int:
        return int(self.reader.get_subscription_matched_status().current_count)

    def close(self) -> None:
        self._transport._remove_subscription(self)


class _ThreadTimer(Timer):

    def __init__(self, period_s: float, callback: Callable[[], None], name: str):
        self._stop = threading.Event()
        self.period = float(period_s)
        self.callback = callback
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_due = time.monotonic() + self.period
        while not self._stop.wait(max(0.0, next_due - time.monotonic())):
            next_due += self.period
            if next_due < time.monotonic():  # fell behind: skip, do not burst
                next_due = time.monotonic() + self.period
            try:
                self.callback()
            except Exception:  # a timer callback must not kill the timer
                log.exception('timer callback failed')

    def cancel(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


class DdsTransport(Transport):
    """One DDS participant; publishers, subscriptions and timers of one node."""

    def __init__(self, domain_id: int = 0, namespace: str = '/', node_name: str = 'sgdfuse',
                 config_xml: Optional[str] = None, remaps: Optional[Dict[str, str]] = None):
        if not 0 <= int(domain_id) <= MAX_DOMAIN_ID:
            raise ConfigError(f'DDS domain id must be in 0..{MAX_DOMAIN_ID}, got {domain_id}')
        self.domain_id = int(domain_id)
        self.namespace = '/' + namespace.strip('/') if namespace.strip('/') else '/'
        self.node_name = node_name
        self.remaps = dict(remaps or {})
        try:
            # a Domain created with a configuration is used by the participants created after it;
            # shared (reference-counted) by the transports of this process on the same domain id
            self._domain = _acquire_domain(Domain, self.domain_id, config_xml) if config_xml \
                else None
            self.participant = DomainParticipant(self.domain_id)
        except Exception as err:  # bad CYCLONEDDS_URI, no usable interface...
            raise ConfigError(f'could not start Cyclone DDS on domain {domain_id}: {err} '
                              '(check CYCLONEDDS_URI)') from None
        self._topics: Dict[str, Any] = {}
        self._lock = threading.RLock()          # topics, subscription list
        self._dispatch_lock = threading.Lock()  # held while a subscription's callbacks run
        self._subscriptions: List[DdsSubscription] = []
        self._publishers: List[DdsPublisher] = []
        self._timers: List[_ThreadTimer] = []
        self._waitset = WaitSet(self.participant)
        self._wakeup = GuardCondition(self.participant)
        self._waitset.attach(self._wakeup)
        self._running = True
        self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True,
                                            name=f'dds-dispatch-{node_name}')
        self._dispatcher.start()

    # --- topics ----------------------------------------------------------------------------------
    def topic(self, ros_topic: str, typename: str):
        """Return the DDS topic for an already resolved ROS topic name (one per name)."""
        with self._lock:
            existing = self._topics.get(ros_topic)
            if existing is not None:
                if existing[1] != typename:
                    raise ConfigError(f'topic {ros_topic} is already used with type '
                                      f'{existing[1]}, not {typename}')
                return existing[0]
            topic = Topic(self.participant, dds_topic_name(ros_topic), idl_type(typename))
            self._topics[ros_topic] = (topic, typename)
            return topic

    # --- Transport -------------------------------------------------------------------------------
    def create_publisher(self, topic: str, typename: str, qos: QosProfile) -> DdsPublisher:
        publisher = DdsPublisher(self, self.resolve_topic_name(topic), typename, qos)
        with self._lock:
            self._publishers.append(publisher)
        return publisher

    def create_subscription(self, topic: str, typename: str, callback: Callable[[Any], None],
                            qos: QosProfile, raw: bool = False) -> DdsSubscription:
        """With ``raw=True`` the callback gets ``(cdr_bytes, sample_info)``, not a message."""
        subscription = DdsSubscription(self, self.resolve_topic_name(topic), typename, callback,
                                       qos, raw)
        with self._lock:
            self._subscriptions.append(subscription)
            self._waitset.attach(subscription.condition)
        self._wakeup.set(True)
        return subscription

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        timer = _ThreadTimer(period_s, callback, f'timer-{self.node_name}')
        with self._lock:
            self._timers.append(timer)
        return timer

    def now_ns(self) -> int:
        return time.time_ns()

    # --- dispatching -----------------------------------------------------------------------------
    def _remove_subscription(self, subscription: DdsSubscription) -> None:
        with self._dispatch_lock:  # never in the middle of its callbacks
            with self._lock:
                if subscription.closed:
                    return
                subscription.closed = True
                if subscription in self._subscriptions:
                    self._subscriptions.remove(subscription)
                try:
                    self._waitset.detach(subscription.condition)
                except Exception:
                    pass
            _delete(subscription.condition)
            _delete(subscription.reader)

    def _dispatch_loop(self) -> None:
        while self._running:
            try:
                self._waitset.wait(duration(milliseconds=100))
                self._wakeup.set(False)
            except Exception:
                if not self._running:
                    break
                time.sleep(0.01)
                continue
            with self._lock:
                subscriptions = list(self._subscriptions)
            for subscription in subscriptions:
                self._take(subscription)

    def _take(self, subscription: DdsSubscription) -> None:
        with self._dispatch_lock:
            if subscription.closed:
                return
            batch = ddspy_take(subscription.reader._ref, subscription.mask,
                               max(subscription.depth, 8))
            if isinstance(batch, int):  # an error code (e.g. the reader is being deleted)
                return
            for data, info in batch:
                if not info.valid_data:
                    continue
                data = unpad_cdr(data)
                try:
                    if subscription.raw:
                        subscription.callback(data, info)
                    else:
                        subscription.callback(messages.deserialize(data,
                                                                   subscription.typename))
                except Exception:  # the dispatcher must survive any callback
                    log.exception('callback of %s failed', subscription.topic)

    def close(self) -> None:
        if not self._running:
            return
        for timer in list(self._timers):
            timer.cancel()
        for subscription in list(self._subscriptions):
            subscription.close()
        for publisher in list(self._publishers):
            publisher.close()
        self._running = False
        self._wakeup.set(True)
        if self._dispatcher is not threading.current_thread():
            self._dispatcher.join(timeout=5.0)
        _delete(self.participant)
        if self._domain is not None:
            _release_domain(self.domain_id)
            self._domain = None
