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

import cv2
import numpy as np
import pytest

from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import ConfigError, InputError
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline, ThreadPolicy, ThreadTuner
from sgdfuse_ros.prior.format import SemanticPrior

CLASSICAL = {'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}


@pytest.fixture(scope='module')
def pipeline():
    with FusionPipeline(load_config(overrides=CLASSICAL)) as p:
        yield p


@pytest.fixture(scope='module')
def scene():
    return make_pair(3, (320, 240))


def test_result_fields(pipeline, scene):
    ir, vis, _ = scene
    r = pipeline.process(ir, vis)
    assert r.fused_bgr.shape == (240, 320, 3) and r.fused_bgr.dtype == np.uint8
    assert r.fused_y.shape == (240, 320) and r.fused_y.dtype == np.uint8
    assert r.labels.dtype == np.uint16 and r.prior.source == 'thermal'
    for stage in ('decode', 'register', 'prior', 'first_stage', 'colour', 'total'):
        assert r.timings[stage] >= 0
    assert r.timings['total'] >= r.timings['first_stage']


def test_fused_keeps_warm_targets_and_visible_texture(pipeline, scene):
    ir, vis, targets = scene
    r = pipeline.process(ir, vis)
    vis_y = r.visible.mean(axis=2)
    # warm people are dark in the visible image and must be bright in the fused one
    assert r.fused_y[targets].mean() > vis_y[targets].mean() + 40
    # the prior found them
    found = (r.prior.targets > 0.5)
    iou = (found & targets).sum() / (found | targets).sum()
    assert iou > 0.5, iou


@pytest.mark.parametrize('encoding,scale', [('mono8', None), ('mono16', 30), ('16UC1', 30),
                                            ('32FC1', 0.1)])
def test_thermal_encodings(pipeline, scene, encoding, scale):
    ir, vis, targets = scene
    if encoding == 'mono8':
        raw = ir
    elif encoding == '32FC1':
        raw = (20.0 + ir.astype(np.float32) * scale).astype(np.float32)
    else:
        raw = (7000 + ir.astype(np.uint16) * scale).astype(np.uint16)
    r = pipeline.process(raw, vis, thermal_encoding=encoding)
    assert r.fused_y[targets].mean() > r.fused_y[~targets].mean()


def test_visible_rgb8_and_mono8(pipeline, scene):
    ir, vis, _ = scene
    a = pipeline.process(ir, vis, visible_encoding='bgr8')
    b = pipeline.process(ir, np.ascontiguousarray(vis[..., ::-1]), visible_encoding='rgb8')
    np.testing.assert_array_equal(a.fused_bgr, b.fused_bgr)
    gray = pipeline.process(ir, vis.mean(axis=2).astype(np.uint8), visible_encoding='mono8')
    # a gray visible camera: gray output, but for the warm tint (colour.warm_tint) of warm parts
    cool = pipeline.tint.warmth(gray.thermal) == 0
    assert cool.mean() > 0.3 and (~cool).any()
    for k in (0, 1):
        assert (gray.fused_bgr[..., k][cool] == gray.fused_bgr[..., 2][cool]).all()


def test_given_prior_is_used_and_resized(pipeline, scene):
    ir, vis, _ = scene
    prior = SemanticPrior.empty((60, 80), source='sam')
    r = pipeline.process(ir, vis, prior=prior)
    assert r.prior.source == 'sam' and r.prior.shape == (240, 320)


def test_output_resolution_and_homography(scene):
    ir, vis, _ = scene
    H = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1]
    config = load_config(overrides=dict(CLASSICAL, **{'output.width': 160, 'output.height': 120,
                                                      'registration.homography': H}))
    with FusionPipeline(config) as p:
        r = p.process(ir, vis)
    assert r.fused_bgr.shape == (120, 160, 3)


def test_bad_frames_raise_input_error(pipeline, scene):
    ir, vis, _ = scene
    with pytest.raises(InputError, match='empty'):
        pipeline.process(np.zeros((0, 5), np.uint8), vis)
    with pytest.raises(InputError, match='differ in size'):
        pipeline.process(ir[:100], vis)
    with pytest.raises(InputError, match='unsupported thermal encoding'):
        pipeline.process(ir, vis, thermal_encoding='bayer')
    with pytest.raises(InputError, match='max_input_pixels'):
        with FusionPipeline(load_config(overrides=dict(CLASSICAL, **{
                'limits.max_input_pixels': 1000}))) as small:
            small.process(ir, vis)
    with pytest.raises(InputError):
        pipeline.process('not an image', vis)


def test_failing_refiner_publishes_first_stage(scene):
    ir, vis, _ = scene
    with FusionPipeline(load_config(overrides=CLASSICAL)) as p:
        def broken(*args):
            raise RuntimeError('boom')
        p.refiner = broken
        r = p.process(ir, vis)
        assert not r.refined and p.refiner_failures == 1 and 'boom' in r.notes[0]
        np.testing.assert_allclose(r.fused_y / 255.0, r.first_stage_y, atol=1 / 255 + 1e-6)


# --- the thread policy


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


def test_pipeline_applies_and_reports_its_thread_policy():
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
