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

"""The node's books: every frame in one bucket, and the check that says when they do not add up."""

import pytest
from sgdfuse_ros.intake import Frame, Pair
from sgdfuse_ros.node.accounting import (accounting_errors, LatencyWindow, NodeStatistics,
                                         RateMeter)


def _pair(arrival=1.0):
    frames = [Frame(role, None, 0, '', None, 'mono8', arrival) for role in ('thermal', 'visible')]
    return Pair(*frames, matched_at=arrival)


def _snapshot(stats):
    sync = {role: {'unmatched': 0, 'late': 0, 'duplicate': 0, 'overflow': 0, 'pending': 0}
            for role in ('thermal', 'visible')}
    topics = {'thermal': '/t', 'visible': '/v', 'camera_info': '/i'}
    return {'inputs': stats.snapshot(2.0, sync, topics, {})['inputs']}


def test_a_settled_pair_is_counted_once_and_the_books_balance():
    stats = NodeStatistics(10)
    for role in ('thermal', 'visible'):
        stats.receive(role, 1.0)
    pair = _pair()
    stats.offer(pair, 1.0)
    assert not stats.idle()
    stats.settle(pair, 'busy')
    stats.settle(pair, 'busy')  # a second settle of the same pair changes nothing
    assert stats.idle()
    assert stats.inputs['thermal'].dropped['busy'] == 1
    assert accounting_errors(_snapshot(stats)) == []


def test_a_frame_received_but_never_settled_unbalances_the_books():
    stats = NodeStatistics(10)
    stats.receive('thermal', 1.0)
    stats.receive('thermal', 1.1)
    stats.reject('thermal', 'encoding', 1.1)
    errors = accounting_errors(_snapshot(stats))
    assert len(errors) == 1 and errors[0].startswith('thermal: received 2 != ')


def test_rate_counts_events_in_the_window_only():
    meter = RateMeter(window_s=5.0)
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        meter.tick(t)
    assert meter.rate(4.0) == pytest.approx(1.0)
    assert meter.count(8.0) == 2 and meter.last() == 4.0
    assert RateMeter().rate(0.0) == 0.0


def test_latency_window_keeps_the_last_samples_per_stage():
    window = LatencyWindow(size=3)
    for ms in (100.0, 1.0, 2.0, 3.0):
        window.add('fuse', ms)
    summary = window.summary()['fuse']
    assert summary['n'] == 3 and summary['p50'] == 2.0  # the 100 ms sample left the window
