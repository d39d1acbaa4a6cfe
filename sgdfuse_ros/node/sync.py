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
Approximate time synchronisation of two camera streams, with every message accounted for.

The node (rclpy or DDS transport) and the bag replay use this same class, so a replay pairs
messages exactly as the live node does. Semantics follow message_filters'
ApproximateTimeSynchronizer where it matters to users: a pair is two messages whose stamps differ
by at most ``slop`` seconds, each message is used at most once, and each topic keeps at most
``queue_size`` messages waiting for a partner.

Decision rule (low latency, no look-ahead beyond what has arrived): the oldest waiting message
``a`` is decided once the other topic holds a message at least as new as ``a`` (a later arrival
could not be closer). Its partner is the closest message ``b`` of the other topic; the pair is
emitted if ``|a - b| <= slop`` and the next message of ``a``'s own topic is not closer to ``b``.
Otherwise ``a`` is dropped as unmatched. Messages of the other topic older than ``b`` are
dropped as unmatched too.

Counters per topic: ``received = matched + unmatched + late + duplicate + overflow + pending``.

A stamp older than its topic's newest by more than ``STAMP_JUMP_BACK_S`` (a looping bag, a
restarted clock) restarts pairing (:meth:`ApproximateSync.jumped_back`); the node and the bag
replay both call it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

TOPICS = (0, 1)  # 0 = thermal, 1 = visible
STAMP_JUMP_BACK_S = 1.0  # an older stamp by more than this restarts the synchroniser


@dataclass
class TopicCounters:
    received: int = 0
    matched: int = 0
    unmatched: int = 0     # no partner within slop, or a better-matching partner was chosen
    late: int = 0          # older than the last message already paired on this topic
    duplicate: int = 0     # same stamp as a message already waiting on this topic
    overflow: int = 0      # pushed out of a full queue

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ApproximateSync:
    slop: float = 0.05
    queue_size: int = 10
    on_drop: Optional[Callable[[int, float, Any, str], None]] = None  # (topic, stamp, msg, why)
    counters: Tuple[TopicCounters, TopicCounters] = field(
        default_factory=lambda: (TopicCounters(), TopicCounters()))

    def __post_init__(self):
        self._stamps: List[List[float]] = [[], []]
        self._items: List[List[Any]] = [[], []]
        self._last_paired: List[float] = [float('-inf'), float('-inf')]
        self._newest: List[Optional[float]] = [None, None]  # newest stamp seen (jump check)

    def pending(self, topic: int) -> int:
        return len(self._stamps[topic])

    def _drop(self, topic: int, index: int, why: str) -> None:
        stamp = self._stamps[topic].pop(index)
        item = self._items[topic].pop(index)
        setattr(self.counters[topic], why, getattr(self.counters[topic], why) + 1)
        if self.on_drop is not None:
            self.on_drop(topic, stamp, item, why)

    def add(self, topic: int, stamp: float, item: Any) -> List[Tuple[float, Any, float, Any]]:
        """Offer one message; return the pairs it completes as (stamp0, item0, stamp1, item1)."""
        if topic not in TOPICS:
            raise ValueError('topic must be 0 (thermal) or 1 (visible)')
        counters = self.counters[topic]
        counters.received += 1
        stamps, items = self._stamps[topic], self._items[topic]
        if stamp <= self._last_paired[topic]:
            counters.late += 1
            if self.on_drop is not None:
                self.on_drop(topic, stamp, item, 'late')
            return []
        index = bisect.bisect_left(stamps, stamp)
        if index < len(stamps) and stamps[index] == stamp:
            counters.duplicate += 1
            if self.on_drop is not None:
                self.on_drop(topic, stamp, item, 'duplicate')
            return []
        stamps.insert(index, stamp)
        items.insert(index, item)
        while len(stamps) > self.queue_size:
            self._drop(topic, 0, 'overflow')
        return self._match()

    def _match(self) -> list:
        pairs = []
        while self._stamps[0] and self._stamps[1]:
            # the oldest waiting message overall
            a_topic = 0 if self._stamps[0][0] <= self._stamps[1][0] else 1
            b_topic = 1 - a_topic
            a = self._stamps[a_topic][0]
            others = self._stamps[b_topic]
            if others[-1] < a:
                break  # a closer partner for `a` may still arrive
            j = bisect.bisect_left(others, a)
            candidates = [k for k in (j - 1, j) if 0 <= k < len(others)]
            j = min(candidates, key=lambda k: abs(others[k] - a))
            b = others[j]
            own = self._stamps[a_topic]
            if abs(b - a) > self.slop or (len(own) > 1 and abs(own[1] - b) < abs(a - b)):
                self._drop(a_topic, 0, 'unmatched')
                continue
            for _ in range(j):
                self._drop(b_topic, 0, 'unmatched')
            a_item = self._items[a_topic].pop(0)
            self._stamps[a_topic].pop(0)
            b_item = self._items[b_topic].pop(0)
            self._stamps[b_topic].pop(0)
            for t, s in ((a_topic, a), (b_topic, b)):
                self.counters[t].matched += 1
                self._last_paired[t] = s
            if a_topic == 0:
                pairs.append((a, a_item, b, b_item))
            else:
                pairs.append((b, b_item, a, a_item))
        return pairs

    def flush(self) -> None:
        """End of stream: every waiting message is unmatched."""
        for topic in TOPICS:
            while self._stamps[topic]:
                self._drop(topic, 0, 'unmatched')

    def restart(self) -> None:
        """Pair afresh (stamps may restart): waiting messages are unmatched, counters kept."""
        self.flush()
        self._last_paired = [float('-inf'), float('-inf')]
        self._newest = [None, None]

    def jumped_back(self, topic: int, stamp: float) -> float:
        """
        Track ``topic``'s newest stamp; restart on a jump back by more than STAMP_JUMP_BACK_S.

        Return the jump in seconds (0.0 when there was none). Call it before :meth:`add`.
        """
        newest = self._newest[topic]
        self._newest[topic] = stamp if newest is None else max(newest, stamp)
        if newest is not None and stamp < newest - STAMP_JUMP_BACK_S:
            self.restart()
            self._newest[topic] = stamp
            return newest - stamp
        return 0.0

    @property
    def newest(self) -> Tuple[Optional[float], Optional[float]]:
        """Newest stamp seen on each stream (thermal, visible); None before the first."""
        return self._newest[0], self._newest[1]

    def stats(self) -> dict:
        names = ('thermal', 'visible')
        return {names[t]: dict(self.counters[t].as_dict(), pending=self.pending(t))
                for t in TOPICS}
