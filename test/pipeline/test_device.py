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

"""The thread policy: no-spin environment, backend choice, and the adaptive thread tuner."""

import pytest

from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.hardware import thread_candidates
from sgdfuse_ros.pipeline import device
from sgdfuse_ros.pipeline.device import prepare_process, resolve_backend, ThreadPolicy, ThreadTuner


def feed(tuner, cost_of, frames):
    """Run ``frames`` frames whose cost depends on the count in use; return the counts used."""
    used = []
    for _ in range(frames):
        used.append(tuner.count)
        tuner.observe(cost_of(tuner.count))
    return used


def test_tuner_moves_to_one_thread_when_two_get_slow_and_back():
    tuner = ThreadTuner([1, 2], interval=10, probe_frames=3, window=6)
    assert tuner.count == 2  # starts with the most threads
    idle = {1: 60.0, 2: 40.0}
    used = feed(tuner, idle.get, 200)
    assert used[-1] == 2 and tuner.switches == 0
    assert tuner.probes >= 2
    # a probe that confirms the count doubles the interval: few probe frames on a steady machine
    assert used[100:].count(1) <= 8
    loaded = {1: 70.0, 2: 200.0}  # a co-runner took a core: two threads stall
    used = feed(tuner, loaded.get, 40)
    assert used[-1] == 1 and tuner.switches == 1
    # the change of cost triggered the probe long before the doubled interval ran out
    assert used.index(1) < 12
    used = feed(tuner, idle.get, 60)  # the co-runner stopped
    assert used[-1] == 2 and tuner.switches == 2


def test_tuner_keeps_its_count_within_the_margin_and_ignores_bad_costs():
    tuner = ThreadTuner([1, 2], interval=5, probe_frames=3, window=4, margin=0.1)
    feed(tuner, {1: 97.0, 2: 100.0}.get, 100)  # 3 % better is noise, not a reason to switch
    assert tuner.count == 2 and tuner.switches == 0
    probes = tuner.probes
    for bad in (float('nan'), 0.0, -1.0):
        assert tuner.observe(bad) == 2
    assert tuner.probes == probes


def test_tuner_skips_the_first_probe_frame():
    tuner = ThreadTuner([1, 2], interval=4, probe_frames=2, window=4)
    feed(tuner, lambda c: 100.0, 4)
    assert tuner.count == 1  # probing
    tuner.observe(10_000.0)  # the first frame on the new count (pools waking up): not counted
    tuner.observe(50.0)
    tuner.observe(50.0)
    assert tuner.count == 1 and tuner.switches == 1


def test_one_candidate_never_probes():
    tuner = ThreadTuner([1])
    assert not tuner.adaptive
    assert feed(tuner, lambda c: 10.0, 50) == [1] * 50 and tuner.probes == 0


def test_candidates():
    assert thread_candidates(0, 2) == [1, 2]
    assert thread_candidates(0, 8) == [1, 4, 8]
    assert thread_candidates(3, 8) == [1, 3]
    assert thread_candidates(0, 1) == [1]


def test_policy_applies_counts_and_reports():
    applied = []
    policy = ThreadPolicy('adaptive', 0, 'cpu', cores=2, apply=applied.append)
    assert policy.candidates == [1, 2]
    policy.before_frame()
    policy.before_frame()
    assert applied == [2]  # set once, not every frame
    for _ in range(200):
        policy.before_frame()
        policy.after_frame(80.0 if policy.count == 2 else 30.0, 640 * 512)
    assert applied[-1] == 1 and policy.stats()['threads'] == 1
    stats = policy.stats()
    assert stats['thread_policy'] == 'adaptive' and stats['switches'] >= 1
    assert set(stats['ms_per_megapixel']) == {'1', '2'}

    fixed = ThreadPolicy('fixed', 0, 'cpu', cores=4, apply=applied.append)
    assert fixed.candidates == [4] and fixed.tuner is None
    on_gpu = ThreadPolicy('adaptive', 0, 'cuda', cores=4, apply=applied.append)
    assert on_gpu.tuner is None  # the GPU does the work: no tuning of CPU threads
    library = ThreadPolicy('library', 0, 'cpu', cores=4, apply=applied.append)
    applied.clear()
    library.before_frame()
    assert applied == [] and library.stats()['threads'] == 'library default'
    with pytest.raises(ConfigError):
        ThreadPolicy('fastest', 0, 'cpu', cores=2)


def test_prepare_process_sets_passive_wait_only_before_torch():
    env = {}
    assert prepare_process('adaptive', env, modules={}) == 'PASSIVE'
    assert env['OMP_WAIT_POLICY'] == 'PASSIVE' and env['KMP_BLOCKTIME'] == '0'
    user = {'OMP_WAIT_POLICY': 'ACTIVE'}
    assert prepare_process('fixed', user, modules={}) == 'ACTIVE (set by the user)'
    assert user['OMP_WAIT_POLICY'] == 'ACTIVE'
    late = {}
    state = prepare_process('adaptive', late, modules={'torch': object()})
    assert 'OMP_WAIT_POLICY' not in late and 'before the pipeline' in state
    library = {}
    assert prepare_process('library', library, modules={}) == 'library default'
    assert library == {}
    with pytest.raises(ConfigError):
        prepare_process('spin', {}, modules={})


def test_backend_auto(monkeypatch):
    monkeypatch.setattr(device, 'onnx_available', lambda: True)
    assert resolve_backend({'backend': 'auto'}, 'cpu') == 'onnx'
    assert resolve_backend({'backend': 'auto'}, 'cuda') == 'torch'
    assert resolve_backend({'backend': 'torch'}, 'cpu') == 'torch'
    assert resolve_backend({'backend': 'onnx'}, 'cuda') == 'onnx'
    monkeypatch.setattr(device, 'onnx_available', lambda: False)
    assert resolve_backend({'backend': 'auto'}, 'cpu') == 'torch'


def test_pipeline_applies_and_reports_its_thread_policy():
    import cv2
    import numpy as np

    from sgdfuse_ros.config import load_config
    from sgdfuse_ros.pipeline import FusionPipeline

    cfg = load_config(overrides={'first_stage.type': 'laplacian', 'refiner.steps': 0,
                                 'prior.source': 'thermal', 'thread_policy': 'fixed',
                                 'threads': 1})
    before = cv2.getNumThreads()
    try:
        with FusionPipeline(cfg) as pipeline:
            rng = np.random.default_rng(0)
            pipeline.process(rng.integers(0, 255, (64, 80), np.uint8),
                             rng.integers(0, 255, (64, 80, 3), np.uint8))
            stats = pipeline.compute_stats()
            assert stats['threads'] == 1 and stats['thread_policy'] == 'fixed'
            assert cv2.getNumThreads() == 1  # OpenCV follows the policy too
            assert pipeline.describe()['threads'] == 1
    finally:
        cv2.setNumThreads(before)
