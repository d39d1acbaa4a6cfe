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

"""Rates over a time window and per-stage latency windows; the one percentile summary."""

import pytest
from sgdfuse_ros.node.meters import LatencyWindow, percentile_summary, RateMeter


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


def test_percentile_summary_keys():
    out = percentile_summary([1, 2, 3, 4], ('p50', 'mean', 'max', 'n', 'median'), digits=2)
    assert out == {'p50': 2.5, 'mean': 2.5, 'max': 4.0, 'n': 4, 'median': 2.5}
