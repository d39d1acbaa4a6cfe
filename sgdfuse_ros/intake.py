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
The intake: a camera message and its role become a checked frame; frames of the two cameras pairs.

One implementation for the node (both transports), the bag replay and ``sgdfuse adapt``, so a
replay or an adaptation rejects and pairs exactly what the node rejects and pairs:

    frame = frame_from_msg('thermal', msg, max_pixels, arrival)      # or frame_from_bytes(...)
    jump, pairs = pair_frame(sync, frame)                            # sync: ApproximateSync

A camera's **role** is ``'thermal'`` or ``'visible'`` (:data:`ROLES`); users see the labels of
:data:`ROLE_LABELS` (``rgb``, after the topic). A message that fails a check raises
:class:`Rejected` with one of :data:`REJECT_REASONS`: ``cdr`` (the bytes do not deserialise),
``encoding``, ``size`` (from the header fields, checked before the payload is touched),
``decode`` (payload length, step, byte order, compressed data, or anything else the message
breaks). A rejected message costs only itself.

Pairing (:class:`ApproximateSync`) follows message_filters' ApproximateTimeSynchronizer where it
matters to users: a pair is two messages whose stamps differ by at most ``slop`` seconds, each
message is used at most once, and each camera keeps at most ``queue_size`` messages waiting for a
partner. Decision rule (low latency, no look-ahead beyond what has arrived): the oldest waiting
message ``a`` is decided once the other camera holds a message at least as new as ``a`` (a later
arrival could not be closer). Its partner is the closest message ``b`` of the other camera; the
pair is emitted if ``|a - b| <= slop`` and the next message of ``a``'s own camera is not closer to
``b``. Otherwise ``a`` is dropped as unmatched. Messages of the other camera older than ``b`` are
dropped as unmatched too. Counters per camera: ``received = matched + unmatched + late +
duplicate + overflow + pending``. A stamp older than its camera's newest by more than
``STAMP_JUMP_BACK_S`` (a looping bag, a restarted clock) restarts pairing (:func:`pair_frame`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple

import numpy as np

from .errors import InputError
from .image_decode import SizeRefused
from .messages import deserialize, image_from_msg, stamp_nanoseconds
from .pipeline.images import THERMAL_ENCODINGS, VISIBLE_ENCODINGS

ROLES = ('thermal', 'visible')  # the two cameras, as the code names them
# ... and as statistics, diagnostics and replay reports name them: after their topics
# (thermal/image_raw, rgb/image_raw), which are what ROS users set and read
ROLE_LABELS = {'thermal': 'thermal', 'visible': 'rgb'}
REJECT_REASONS = ('cdr', 'encoding', 'size', 'decode')
STAMP_JUMP_BACK_S = 1.0  # an older stamp by more than this restarts the synchroniser


class Rejected(InputError):

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


def short(text, limit: int = 40) -> str:
    """Return a field from a message, safe to put in a log line (bounded, printable)."""
    text = str(text)
    return repr(text[:limit]) + ('...' if len(text) > limit else '')


@dataclass
class Frame:
    """One decoded camera image, checked and ready to pair and fuse."""

    role: str              # 'thermal' or 'visible'
    stamp: Any             # builtin_interfaces/Time of the message header
    stamp_ns: int
    frame_id: str
    image: np.ndarray
    encoding: str
    arrival: float         # arrival time on the caller's clock (node: monotonic s; bag: log ns)

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns * 1e-9


@dataclass
class Pair:
    """A thermal and a visible frame the synchroniser matched."""

    thermal: Frame
    visible: Frame
    matched_at: float = 0.0
    settled: bool = False  # counted as published, dropped or rejected (the node)


def check_image(role: str, msg, max_pixels: int) -> Tuple[np.ndarray, str]:
    """``msg`` an Image or CompressedImage of camera ``role`` -> (image, encoding); Rejected."""
    allowed = THERMAL_ENCODINGS if role == 'thermal' else VISIBLE_ENCODINGS
    what = 'thermal' if role == 'thermal' else 'RGB'
    if not hasattr(msg, 'format'):  # a raw Image: check the cheap fields first
        encoding = str(msg.encoding)
        if encoding not in allowed:
            raise Rejected('encoding', f'{what} image has encoding {short(encoding)} '
                                       f"(expected one of {', '.join(allowed)})")
        height, width = int(msg.height), int(msg.width)
        if height <= 0 or width <= 0 or height * width > max_pixels:
            raise Rejected('size', f'{what} image is {width}x{height} (empty, or more than '
                                   f'limits.max_input_pixels={max_pixels})')
    try:
        image, encoding = image_from_msg(msg, max_pixels)
    except SizeRefused as err:  # a compressed image's header: refused before decoding
        raise Rejected('size', f'{what} image: {err}') from None
    except InputError as err:
        raise Rejected('decode', f'{what} image: {err}') from None
    if encoding not in allowed:
        raise Rejected('encoding', f'{what} image decodes to {short(encoding)} '
                                   f"(expected one of {', '.join(allowed)})")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise Rejected('size', f'{what} image is {image.shape[1]}x{image.shape[0]}, more '
                               f'than limits.max_input_pixels={max_pixels}')
    return image, encoding


def frame_from_msg(role: str, msg, max_pixels: int, arrival: float = 0.0) -> Frame:
    """Check a deserialised camera message of ``role`` -> :class:`Frame`; Rejected if not."""
    try:
        image, encoding = check_image(role, msg, max_pixels)
        header = msg.header
        return Frame(role, header.stamp, stamp_nanoseconds(header), str(header.frame_id),
                     image, encoding, arrival)
    except Rejected:
        raise
    except Exception as err:  # whatever a broken message does, it costs only itself
        raise Rejected('decode', f'{type(err).__name__}: {short(err, 200)}') from None


def frame_from_bytes(role: str, raw, msgtype: str, max_pixels: int, arrival: float = 0.0) -> Frame:
    """Deserialise CDR bytes (a bag's message) and check them as :func:`frame_from_msg`."""
    try:
        msg = deserialize(raw, msgtype)
        stamp_nanoseconds(msg)
    except Exception as err:  # cut or foreign bytes: rejected as the message they are
        raise Rejected('cdr', f'message does not deserialise as {msgtype}: '
                              f'{type(err).__name__}') from None
    return frame_from_msg(role, msg, max_pixels, arrival)


def all_rejected(label: str, read: int, rejected: Mapping[str, int],
                 example: Optional[str] = None) -> Optional[str]:
    """
    Name why no pair formed when every frame of one camera was rejected (one line).

    ``label`` 'thermal' or 'RGB'; ``rejected`` counts by reason. None unless all ``read``
    frames were rejected (then pairing, ``sync.slop``, was never the cause).
    """
    counts = {reason: n for reason, n in rejected.items() if n}
    if read <= 0 or sum(counts.values()) < read:
        return None
    reasons = ', '.join(f'{reason}: {n}' for reason, n in counts.items())
    first = f'; first: {example}' if example else ''
    return f'all {read} {label} frames were rejected ({reasons}){first}'


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
        if topic not in (0, 1):
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
        for topic in (0, 1):
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
        return {ROLES[t]: dict(self.counters[t].as_dict(), pending=self.pending(t))
                for t in (0, 1)}


def pair_frame(sync: ApproximateSync, frame: Frame) -> Tuple[float, List[Pair]]:
    """
    Offer ``frame`` to ``sync`` as the node does; return (jump, the pairs it completes).

    A stamp far older than its camera's newest (``jump`` > 0: seconds it went back) restarts
    pairing first; the caller counts and reports it.
    """
    topic = ROLES.index(frame.role)
    jump = sync.jumped_back(topic, frame.stamp_s)
    return jump, [Pair(thermal, visible) for _, thermal, _, visible in
                  sync.add(topic, frame.stamp_s, frame)]
