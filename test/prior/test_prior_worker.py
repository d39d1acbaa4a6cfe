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
The SAM prior off the critical path.

A slow fake SAM in the worker never slows frames down; ages, failures, timeouts, back-off and
shutdown behave as documented.
"""

import threading
import time

import numpy as np
from prior_scenes import warm_scene
import pytest
from sgdfuse_ros.errors import SgdfuseError
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.prior.provider import PriorProvider
from sgdfuse_ros.prior.thermal import ThermalPrior
from sgdfuse_ros.prior.worker import AsyncPriorWorker


class FakeSam:
    """Sleeps like a slow SAM; returns a prior with one square region; can be told to fail."""

    def __init__(self, delay=0.3, fail=False):
        self.delay = delay
        self.fail = fail
        self.calls = []
        self.release = threading.Event()

    def __call__(self, thermal, visible_bgr):
        self.calls.append(time.monotonic())
        if self.fail:
            raise RuntimeError('CUDA out of memory (fake)')
        self.release.wait(self.delay)
        labels = np.zeros((60, 80), np.uint16)  # its own resolution: frames resize it
        labels[10:30, 10:30] = 1
        return SemanticPrior.from_labels(labels, [1], 'sam')


@pytest.fixture
def frame():
    thermal, visible, _ = warm_scene((120, 160))
    return thermal, visible


def _provider(fake, **kw):
    options = {'every_frame': False, 'rate_hz': 20.0, 'max_age_s': 5.0, 'timeout_s': 5.0,
               'backoff_base_s': 0.05, 'backoff_max_s': 1.0}
    options.update(kw)
    return PriorProvider(fake, ThermalPrior(), **options)


def test_frames_flow_at_full_rate_while_sam_is_slow(frame):
    thermal, visible = frame
    fake = FakeSam(delay=0.3)
    provider = _provider(fake)
    sources, ages, durations = [], [], []
    start = time.monotonic()
    while time.monotonic() - start < 1.5:
        t = time.perf_counter()
        prior = provider(thermal, None, visible)
        durations.append(time.perf_counter() - t)
        sources.append(prior.source)
        ages.append(prior.age_s)
        assert prior.shape == thermal.shape
        time.sleep(0.01)
    stats = provider.stats()
    provider.close()
    frames = len(sources)
    # ~100 frames/s offered, SAM gives ~3 priors/s: a frame that waited for SAM would take
    # 0.3 s (5 frames in all); bounds loose enough for a busy CPU, still far from that
    assert frames > 15, frames
    assert float(np.median(durations)) < 0.1, np.median(durations)
    assert sources[0] == 'thermal'  # nothing from SAM yet
    assert 'sam' in sources and sources[-1] == 'sam'
    sam_ages = [a for s, a in zip(sources, ages) if s == 'sam']
    assert max(sam_ages) > 0.25  # ages grow while the next SAM prior is being computed
    assert any(b > a for a, b in zip(sam_ages, sam_ages[1:]))
    assert stats['sam_runs'] >= 2 and stats['sam_failures'] == 0
    assert stats['fallback_frames'] == sources.count('thermal')
    assert stats['frames'] == frames and stats['mode'] == 'worker'
    assert stats['sam_runs'] <= 1.5 / 0.3 + 1  # SAM ran at its own pace, not per frame


def test_old_prior_is_replaced_by_the_fallback(frame):
    thermal, visible = frame
    fake = FakeSam(delay=0.0)
    provider = _provider(fake, rate_hz=0.5, max_age_s=0.2)  # one SAM run, then a 2 s pause
    deadline = time.monotonic() + 2.0
    while provider(thermal, None, visible).source != 'sam':
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)
    prior = provider(thermal, None, visible)
    assert prior.source == 'thermal' and prior.age_s == 0.0
    assert provider.stats()['sam_runs'] == 1
    provider.close()


def test_worker_exceptions_fall_back_and_back_off(frame):
    thermal, visible = frame
    fake = FakeSam(fail=True)
    provider = _provider(fake, backoff_base_s=0.05, backoff_max_s=0.4)
    start = time.monotonic()
    while time.monotonic() - start < 1.2:
        assert provider(thermal, None, visible).source == 'thermal'
        time.sleep(0.005)
    stats = provider.stats()
    provider.close()
    gaps = np.diff(fake.calls)
    assert stats['sam_failures'] == len(fake.calls) >= 3
    assert 'CUDA out of memory' in stats['last_error'] and stats['sam_runs'] == 0
    assert stats['fallback_frames'] == stats['frames']
    # exponential back-off: 0.05, 0.1, 0.2, 0.4, 0.4 ... (not retried every frame)
    assert gaps[0] >= 0.045 and gaps[1] >= 0.09 and gaps[2] >= 0.18
    assert np.all(gaps <= 0.4 + 0.3)  # capped at backoff_max_s (plus scheduling slack)
    assert len(fake.calls) <= 7


def test_recovery_after_failure(frame):
    thermal, visible = frame
    fake = FakeSam(delay=0.0, fail=True)
    provider = _provider(fake, backoff_base_s=0.05)
    provider(thermal, None, visible)
    time.sleep(0.02)
    assert provider(thermal, None, visible).source == 'thermal'
    fake.fail = False
    deadline = time.monotonic() + 2.0
    while provider(thermal, None, visible).source != 'sam':
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stats = provider.stats()
    assert stats['sam_failures'] >= 1 and stats['sam_runs'] >= 1 and stats['backoff_s'] == 0
    provider.close()


def test_timeout_falls_back_counts_and_shutdown_is_bounded(frame):
    thermal, visible = frame
    fake = FakeSam(delay=30.0)  # stuck far beyond the timeout
    provider = _provider(fake, timeout_s=0.2)
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        t = time.perf_counter()
        assert provider(thermal, None, visible).source == 'thermal'
        # a frame never waits for the stuck SAM (30 s); the bound is loose for a busy CPU
        assert time.perf_counter() - t < 5.0
        time.sleep(0.01)
    stats = provider.stats()
    assert stats['sam_timeouts'] == 1 and stats['sam_failures'] == 1
    assert 'timeout' in stats['last_error'] and stats['worker_busy']
    t = time.monotonic()
    # the fake is stuck for 30 s: close gives up after its own timeout and says so
    assert provider.worker.close(timeout_s=0.3) is False
    assert time.monotonic() - t < 10.0
    fake.release.set()  # let the abandoned daemon thread finish
    provider.worker._thread.join(2.0)
    assert not provider.worker.alive
    assert provider.stats()['sam_runs'] == 0  # the late result was thrown away


def test_close_joins_an_idle_worker_quickly(frame):
    thermal, visible = frame
    fake = FakeSam(delay=0.05)
    provider = _provider(fake)
    provider(thermal, None, visible)
    deadline = time.monotonic() + 20.0
    while provider.stats()['worker_busy'] or provider.stats()['sam_runs'] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # an idle worker wakes on close and ends: True means joined, not abandoned after the timeout
    assert provider.worker.close(timeout_s=20.0) is True
    assert not provider.worker.alive


def test_on_error_raises_instead_of_falling_back(frame):
    thermal, visible = frame
    provider = _provider(FakeSam(fail=True), on_error='error')
    provider(thermal, None, visible)
    deadline = time.monotonic() + 2.0
    with pytest.raises(SgdfuseError, match='SAM prior failed'):
        while time.monotonic() < deadline:
            provider(thermal, None, visible)
            time.sleep(0.01)
    provider.close()
    sync = PriorProvider(FakeSam(fail=True), ThermalPrior(), every_frame=True, on_error='error')
    with pytest.raises(SgdfuseError, match='CUDA out of memory'):
        sync(thermal, None, visible)


def test_every_frame_mode_is_synchronous_and_backs_off(frame):
    thermal, visible = frame
    fake = FakeSam(delay=0.0)
    provider = PriorProvider(fake, ThermalPrior(), every_frame=True, backoff_base_s=0.2)
    for _ in range(3):
        prior = provider(thermal, None, visible)
        assert prior.source == 'sam' and prior.age_s == 0.0
    assert len(fake.calls) == 3 and provider.worker is None
    fake.fail = True
    assert provider(thermal, None, visible).source == 'thermal'
    assert provider(thermal, None, visible).source == 'thermal'  # backing off: not called
    assert len(fake.calls) == 4
    stats = provider.stats()
    assert stats['sam_runs'] == 3 and stats['sam_failures'] == 1 and stats['fallback_frames'] == 2


def test_worker_takes_only_the_newest_frame():
    seen = []
    gate = threading.Event()

    def compute(value):
        seen.append(value)
        gate.wait(1.0)
        return value

    worker = AsyncPriorWorker(compute, rate_hz=100.0, timeout_s=5.0)
    worker.submit(0)
    deadline = time.monotonic() + 20.0
    while seen != [0]:  # wait until the worker is inside compute(0)
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for value in range(1, 6):
        worker.submit(value)
    gate.set()
    deadline = time.monotonic() + 2.0
    while worker.poll().prior != 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert seen == [0, 5]
    assert worker.close()
