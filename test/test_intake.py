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

"""ApproximateSync: the one synchroniser the node and the bag replay share."""

import random

import pytest

from sgdfuse_ros.intake import ApproximateSync

THERMAL, VISIBLE = 0, 1


def feed(sync, events):
    """events: (topic, stamp) in arrival order; returns all pairs as (thermal, visible) stamps."""
    pairs = []
    for topic, stamp in events:
        for s0, item0, s1, item1 in sync.add(topic, stamp, (topic, stamp)):
            assert item0 == (THERMAL, s0) and item1 == (VISIBLE, s1)
            pairs.append((s0, s1))
    return pairs


def balanced(sync):
    for name, c in sync.stats().items():
        total = c['matched'] + c['unmatched'] + c['late'] + c['duplicate'] + c['overflow'] + \
            c['pending']
        assert total == c['received'], (name, c)


def test_equal_stamps_pair_as_soon_as_both_arrived():
    sync = ApproximateSync(slop=0.01, queue_size=5)
    assert sync.add(THERMAL, 1.0, 't') == []
    assert sync.add(VISIBLE, 1.0, 'r') == [(1.0, 't', 1.0, 'r')]
    assert sync.pending(THERMAL) == sync.pending(VISIBLE) == 0
    balanced(sync)


def test_pairs_within_slop_and_not_beyond():
    sync = ApproximateSync(slop=0.05, queue_size=10)
    # 0.0 has only 0.06 as a partner (too far): dropped once 0.06 shows nothing closer can come
    pairs = feed(sync, [(THERMAL, 0.0), (VISIBLE, 0.06), (THERMAL, 0.1)])
    assert pairs == [(0.1, 0.06)]
    stats = sync.stats()
    assert stats['thermal']['unmatched'] == 1 and stats['thermal']['matched'] == 1
    balanced(sync)
    # exactly slop apart still pairs (binary-exact stamps)
    sync = ApproximateSync(slop=0.25, queue_size=10)
    assert feed(sync, [(THERMAL, 1.0), (VISIBLE, 1.25)]) == [(1.0, 1.25)]


def test_decides_once_no_later_arrival_could_be_closer():
    sync = ApproximateSync(slop=0.05, queue_size=10)
    # visible 0.98 is the oldest message and thermal already holds a newer one (1.0): a later
    # thermal (>= 1.0) cannot be closer to 0.98, so the pair is emitted at once (low latency)
    assert feed(sync, [(THERMAL, 1.0), (VISIBLE, 0.98)]) == [(1.0, 0.98)]
    # thermal 1.0 is used: the next visible waits for the next thermal
    assert feed(sync, [(VISIBLE, 1.001)]) == []
    assert sync.pending(VISIBLE) == 1
    # while the other topic has nothing at least as new, nothing is decided
    sync = ApproximateSync(slop=0.05, queue_size=10)
    assert feed(sync, [(THERMAL, 1.0), (VISIBLE, 1.02), (THERMAL, 1.03)]) == [(1.0, 1.02)]
    assert sync.pending(THERMAL) == 1
    balanced(sync)


def test_a_better_partner_on_the_same_topic_wins():
    sync = ApproximateSync(slop=0.05, queue_size=10)
    # thermal 0.0 and 0.03 both fit visible 0.04; 0.03 is closer, 0.0 is dropped
    pairs = feed(sync, [(THERMAL, 0.0), (THERMAL, 0.03), (VISIBLE, 0.04)])
    assert pairs == [(0.03, 0.04)]
    assert sync.stats()['thermal']['unmatched'] == 1
    balanced(sync)


def test_out_of_order_arrivals_are_sorted_and_late_ones_dropped():
    sync = ApproximateSync(slop=0.01, queue_size=10)
    pairs = feed(sync, [(THERMAL, 0.1), (THERMAL, 0.0), (VISIBLE, 0.0), (VISIBLE, 0.1)])
    assert pairs == [(0.0, 0.0), (0.1, 0.1)]
    # older than what was already paired on its topic: late, never paired
    assert feed(sync, [(THERMAL, 0.05), (VISIBLE, 0.05)]) == []
    stats = sync.stats()
    assert stats['thermal']['late'] == 1 and stats['visible']['late'] == 1
    balanced(sync)


def test_duplicate_stamps_are_counted_once():
    sync = ApproximateSync(slop=0.01, queue_size=10)
    assert feed(sync, [(THERMAL, 2.0), (THERMAL, 2.0), (VISIBLE, 2.0)]) == [(2.0, 2.0)]
    stats = sync.stats()
    assert stats['thermal']['duplicate'] == 1 and stats['thermal']['matched'] == 1
    balanced(sync)


def test_queue_overflow_drops_the_oldest():
    sync = ApproximateSync(slop=0.01, queue_size=3)
    feed(sync, [(THERMAL, 0.1 * i) for i in range(5)])
    stats = sync.stats()['thermal']
    assert stats['overflow'] == 2 and stats['pending'] == 3
    # the survivors are the newest three: 0.2 pairs, 0.0 and 0.1 are gone
    assert feed(sync, [(VISIBLE, 0.2)]) == [(0.2, 0.2)]
    balanced(sync)


def test_missing_partner_frame_drops_only_its_counterpart():
    sync = ApproximateSync(slop=0.01, queue_size=10)
    events = []
    for i in range(5):
        events.append((THERMAL, i * 0.1))
        if i != 2:  # the visible frame of 0.2 was lost
            events.append((VISIBLE, i * 0.1 + 0.002))
    pairs = feed(sync, events)
    assert [p[0] for p in pairs] == pytest.approx([0.0, 0.1, 0.3, 0.4])
    stats = sync.stats()
    assert stats['thermal']['unmatched'] == 1 and stats['visible']['unmatched'] == 0
    balanced(sync)


def test_a_silent_topic_never_pairs_and_flush_accounts_for_the_rest():
    sync = ApproximateSync(slop=0.01, queue_size=4)
    assert feed(sync, [(VISIBLE, 0.1 * i) for i in range(10)]) == []
    sync.flush()
    stats = sync.stats()['visible']
    assert stats == dict(stats, received=10, overflow=6, unmatched=4, pending=0, matched=0)
    balanced(sync)


def test_on_drop_reports_every_dropped_message():
    seen = []
    sync = ApproximateSync(slop=0.01, queue_size=2,
                           on_drop=lambda topic, stamp, item, why: seen.append((topic, stamp,
                                                                                why)))
    feed(sync, [(THERMAL, 0.0), (THERMAL, 0.0), (THERMAL, 0.1), (THERMAL, 0.2), (VISIBLE, 0.5)])
    assert (THERMAL, 0.0, 'duplicate') in seen and (THERMAL, 0.0, 'overflow') in seen
    assert [why for _, _, why in seen].count('unmatched') == 2
    counted = sum(c['unmatched'] + c['late'] + c['duplicate'] + c['overflow']
                  for c in sync.stats().values())
    assert counted == len(seen)


def test_rejects_unknown_topics():
    with pytest.raises(ValueError):
        ApproximateSync().add(2, 0.0, None)


@pytest.mark.parametrize('seed', range(5))
def test_random_streams_keep_every_invariant(seed):
    """Jitter, losses, duplicates and reordering: the books always balance, pairs are valid."""
    rng = random.Random(seed)
    slop = 0.012
    sync = ApproximateSync(slop=slop, queue_size=rng.choice([2, 5, 10]))
    events = []
    for i in range(300):
        base = i / 30.0
        for topic in (THERMAL, VISIBLE):
            if rng.random() < 0.1:
                continue  # lost
            stamp = round(base + rng.uniform(-0.008, 0.008), 6)
            events.append((rng.uniform(0, 0.02) + base, topic, stamp))
            if rng.random() < 0.05:
                events.append((rng.uniform(0, 0.05) + base, topic, stamp))  # duplicate
    events.sort()  # arrival order differs from stamp order
    used, keep = set(), []
    last = {THERMAL: float('-inf'), VISIBLE: float('-inf')}
    for _, topic, stamp in events:
        item = object()
        keep.append(item)
        for s0, item0, s1, item1 in sync.add(topic, stamp, item):
            assert abs(s0 - s1) <= slop + 1e-12
            assert id(item0) not in used and id(item1) not in used
            used.update((id(item0), id(item1)))
            assert s0 > last[THERMAL] and s1 > last[VISIBLE]  # pairs come out in stamp order
            last[THERMAL], last[VISIBLE] = s0, s1
        balanced(sync)
    sync.flush()
    balanced(sync)
    stats = sync.stats()
    assert stats['thermal']['pending'] == stats['visible']['pending'] == 0
    assert stats['thermal']['matched'] == stats['visible']['matched'] > 200
