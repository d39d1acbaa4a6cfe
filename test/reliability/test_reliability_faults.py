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
Faults the node survives, tested through the node core.

The SAM worker raising or hanging, the refiner failing, out-of-memory errors
(``faults.oom_retry``), a missing GPU, missing or broken weights, a worker-side bug, a failing
publisher. Every test checks the books.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import ConfigError, ResourceError
from sgdfuse_ros.node.diagnostics import as_dict, OK, WARN
from sgdfuse_ros.pipeline import stages
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.prior.provider import PriorProvider
from sgdfuse_ros.prior.thermal import ThermalPrior
from test_reliability_support import (
    balanced,
    EchoPipeline,
    H,
    make_core,
    NS,
    one_line,
    scene,
    send_pair,
    W,
)
from waiting import wait_until

torch = pytest.importorskip('torch')

CLASSICAL = {'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}
PROCESSING = f'{NS[1:]}/fusion_node: processing'


@pytest.fixture(scope='module')
def frames():
    return scene()


def processing(core):
    return as_dict(core.diagnostics())[PROCESSING]


# --- the SAM worker ------------------------------------------------------------------------------

class FakeSam:
    """Raises while ``fail`` is set, blocks while ``hang`` is clear... as told."""

    def __init__(self):
        self.fail = None            # an exception to raise
        self.hang = threading.Event()
        self.hang.set()             # set = do not hang
        self.calls = 0

    def __call__(self, thermal, visible_bgr):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        self.hang.wait(10.0)
        labels = np.zeros(thermal.shape, np.uint16)
        labels[5:20, 5:20] = 1
        return SemanticPrior.from_labels(labels, [1], 'sam')


@pytest.fixture
def sam_node(monkeypatch, frames):
    fake = FakeSam()

    def build(config, device):
        return PriorProvider.from_config(fake, ThermalPrior.from_config(config), config,
                                         backoff_base_s=0.05, backoff_max_s=0.2)

    monkeypatch.setitem(stages.PRIOR_SOURCES, 'sam', build)
    core, t = make_core({'prior.source': 'sam', 'prior.rate_hz': 100.0,
                         'prior.sam.timeout_s': 0.3, 'prior.max_age_s': 60.0, 'device': 'cpu'})
    yield fake, core, t
    fake.hang.set()
    core.shutdown()


def _fuse_until(core, t, frames, source, start=10.0, timeout=10.0):
    """Send pairs until one is fused with a prior from ``source``; returns its stamp."""
    thermal, visible, _ = frames
    deadline = time.monotonic() + timeout
    stamp = start
    while time.monotonic() < deadline:
        send_pair(t, stamp, thermal, visible)
        assert core.process_pending()
        if core.stats()['prior']['source'] == source:
            return stamp
        stamp += 0.1
        time.sleep(0.02)
    raise AssertionError(f'no frame fused with a {source} prior within {timeout} s')


def test_sam_raising_falls_back_is_reported_and_retried_with_back_off(sam_node, frames):
    fake, core, t = sam_node
    fake.fail = RuntimeError('CUDA error: an illegal memory access was encountered')
    stamp = _fuse_until(core, t, frames, 'thermal')
    provider = core.pipeline.prior_source
    wait_until(lambda: provider.stats()['sam_failures'] >= 2, 'two SAM failures', timeout=10.0)
    stamp = _fuse_until(core, t, frames, 'thermal', stamp + 1)
    report = processing(core)
    assert report['level'] == WARN
    assert 'prior from thermal instead of sam' in report['message']
    assert 'illegal memory access' in report['message']
    assert int(report['values']['SAM failures']) >= 2
    assert 'RuntimeError' in report['values']['SAM last error']
    assert float(report['values']['SAM retry back-off (s)']) > 0
    # back-off: the second attempt waited at least the base delay after the first failure
    fake.fail = None
    _fuse_until(core, t, frames, 'sam', stamp + 1)
    stats = provider.stats()
    assert stats['sam_runs'] >= 1 and stats['sam_attempts'] >= 3 and stats['backoff_s'] == 0
    assert processing(core)['level'] == OK
    assert t.sent('fused/image')  # every frame got a prior and was published
    assert balanced(core)['output']['pipeline_errors'] == 0


def test_sam_hanging_times_out_falls_back_and_the_node_never_waits(sam_node, frames):
    fake, core, t = sam_node
    _fuse_until(core, t, frames, 'sam')
    fake.hang.clear()  # the next SAM call blocks
    provider = core.pipeline.prior_source
    thermal, visible, _ = frames
    slowest = 0.0
    for i in range(20):  # frames flow while SAM hangs (timeout 0.3 s)
        send_pair(t, 50.0 + i / 10, thermal, visible)
        started = time.monotonic()
        assert core.process_pending()
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    assert slowest < 5.0  # a frame that waited for the hung SAM call would take 10 s
    assert provider.stats()['sam_timeouts'] >= 1
    _fuse_until(core, t, frames, 'thermal', 60.0)
    report = processing(core)
    assert report['level'] == WARN and 'timeout' in report['values']['SAM last error']
    assert int(report['values']['SAM timeouts']) >= 1
    fake.hang.set()
    _fuse_until(core, t, frames, 'sam', 70.0)  # recovers once SAM answers again
    balanced(core)


# --- the refiner, out of memory ------------------------------------------------------------------

class Stage:
    """A first stage or refiner that raises ``error`` while ``failures`` lasts."""

    def __init__(self, real=None, error=None, failures=0, above_pixels=None):
        self.real, self.error, self.failures = real, error, failures
        self.above_pixels = above_pixels  # raise only for inputs larger than this
        self.shapes = []

    def __call__(self, thermal, visible_y, prior, first=None):
        self.shapes.append(thermal.shape)
        too_big = self.above_pixels is None or thermal.size > self.above_pixels
        if self.error is not None and self.failures and too_big:
            self.failures -= 1
            raise self.error
        if self.real is not None:
            return self.real(thermal, visible_y, prior)
        return np.clip(first + 0.25, 0, 1)  # a refiner that visibly changes the image


def _oom():
    return torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')


def _core_with(mode, first=None, refiner=None, cuda=False):
    built = []

    def factory(config):
        pipeline = FusionPipeline(config)
        if first is not None:
            first.real = pipeline.first_stage
            pipeline.first_stage = first
        if refiner is not None:
            pipeline.refiner = refiner
        if cuda:
            pipeline.device = 'cuda'  # as if it ran on a GPU: the OOM path frees its cache
        built.append(pipeline)
        return pipeline

    core, t = make_core(dict(CLASSICAL, **{'faults.oom_retry': mode}), factory=factory)
    return core, t, built[-1]


@pytest.fixture
def empty_cache_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, 'empty_cache', lambda: calls.append(1))
    return calls


def test_a_failing_refiner_publishes_the_first_stage(frames):
    thermal, visible, _ = frames
    refiner = Stage(error=ValueError('NaN in the denoiser'))
    core, t, pipeline = _core_with('no_refiner', refiner=refiner)
    refiner.failures = 1  # after the warm-up frame
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    send_pair(t, 2.0, thermal, visible)  # the refiner works again
    assert core.process_pending()
    first, second = (messages.image_from_msg(m)[0] for m in t.sent('fused/image'))
    stats = balanced(core)
    assert stats['output']['published'] == 2 and stats['output']['recovered'] == \
        {'refiner_failed': 1}
    assert pipeline.refiner_failures == 1
    assert second.mean() > first.mean() + 20  # refined (+0.25) vs the first-stage result
    report = processing(core)
    assert report['level'] == WARN and 'refiner_failed 1' in report['message']
    core.shutdown()


@pytest.mark.parametrize('where', ['refiner', 'first_stage'])
def test_out_of_memory_is_retried_without_the_refiner(frames, empty_cache_calls, where):
    thermal, visible, _ = frames
    first, refiner = Stage(error=_oom()), Stage(error=_oom())
    core, t, pipeline = _core_with('no_refiner', first, refiner, cuda=True)
    (first if where == 'first_stage' else refiner).failures = 1
    first.shapes.clear()
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    stats = balanced(core)
    assert stats['output']['published'] == 1
    assert stats['output']['recovered'] == {'oom_no_refiner': 1}
    assert len(empty_cache_calls) == 1 and pipeline.oom_retries == 1
    assert len(first.shapes) == (2 if where == 'first_stage' else 1)
    fused, _ = messages.image_from_msg(t.sent('fused/image')[0])
    reference = FusionPipeline(load_config(overrides=CLASSICAL)).process(thermal, visible,
                                                                         'mono16')
    np.testing.assert_array_equal(fused, reference.fused_bgr)  # the unrefined result
    report = processing(core)
    assert report['level'] == WARN and 'oom_no_refiner 1' in report['message']
    assert report['values']['recovered (oom_no_refiner)'] == '1'
    core.shutdown()


def test_out_of_memory_is_retried_at_half_resolution(frames, empty_cache_calls):
    thermal, visible, _ = frames
    first = Stage(error=_oom(), above_pixels=(W * H) // 2)
    core, t, pipeline = _core_with('half_resolution', first, cuda=True)
    first.failures = 5  # the full size never fits
    first.shapes.clear()
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    assert first.shapes == [(H, W), (H // 2, W // 2)]
    msg = t.sent('fused/image')[0]
    assert (msg.width, msg.height) == (W, H)  # upsampled back to the output size
    labels, _ = messages.image_from_msg(t.sent('semantic/labels')[0])
    assert labels.shape == (H, W)
    stats = balanced(core)
    assert stats['output']['recovered'] == {'oom_half_resolution': 1}
    assert len(empty_cache_calls) == 1
    core.shutdown()


@pytest.mark.parametrize('mode', ['none', 'no_refiner', 'half_resolution'])
def test_out_of_memory_twice_skips_the_frame_counts_it_and_goes_on(frames, empty_cache_calls,
                                                                   mode):
    thermal, visible, _ = frames
    first = Stage(error=_oom())
    core, t, pipeline = _core_with(mode, first, cuda=True)
    first.failures = 2  # the frame and its retry both run out
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    stats = balanced(core)
    assert stats['output']['published'] == 0
    for source in ('thermal', 'rgb'):
        assert stats['inputs'][source]['dropped']['out_of_memory'] == 1
    assert stats['output']['out_of_memory'] == 1 and pipeline.oom_skipped == 1
    assert len(empty_cache_calls) == (1 if mode == 'none' else 2)
    report = processing(core)
    assert report['level'] == WARN and '1 pairs skipped: out of memory' in report['message']
    assert report['values']['skipped (out of memory)'] == '1'
    first.failures = 0
    send_pair(t, 2.0, thermal, visible)  # memory is back: frames flow again
    assert core.process_pending()
    assert balanced(core)['output']['published'] == 1
    core.shutdown()
    balanced(core)


def test_out_of_memory_on_the_cpu_does_not_touch_cuda(frames, empty_cache_calls):
    thermal, visible, _ = frames
    first = Stage(error=MemoryError('Unable to allocate 3.2 GiB'))
    core, t, _ = _core_with('no_refiner', first)
    first.failures = 1
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    assert balanced(core)['output']['recovered'] == {'oom_no_refiner': 1}
    assert empty_cache_calls == []
    core.shutdown()


def test_the_pipeline_raises_a_one_line_resource_error(frames):
    thermal, visible, _ = frames
    with FusionPipeline(load_config(overrides=dict(CLASSICAL, **{'faults.oom_retry':
                                                                 'none'}))) as pipeline:
        pipeline.first_stage = Stage(error=_oom(), failures=1)
        with pytest.raises(ResourceError) as err:
            pipeline.process(thermal, visible)
    text = one_line(str(err.value))
    assert 'OutOfMemoryError' in text and 'first_stage' in text and 'oom_retry=none' in text


# --- devices and weights -------------------------------------------------------------------------

NEEDS_TORCH = {'prior.source': 'sam', 'prior.sam.checkpoint': '', 'prior.on_sam_error': 'fallback'}


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a GPU')
def test_cuda_requested_without_a_gpu_fails_at_configure_or_falls_back():
    core, t = make_core(dict(NEEDS_TORCH, device='cuda', device_fallback=False), start=False)
    with pytest.raises(ConfigError) as err:
        core.configure()
    assert 'device=cuda requested but no CUDA device is usable' in one_line(str(err.value))
    assert core.state == 'unconfigured' and not t.publishers
    core.shutdown()
    core, t = make_core(dict(NEEDS_TORCH, device='cuda', device_fallback=True))
    assert core.state == 'active' and core.stats()['device'] == 'cpu'
    core.shutdown()


def _save_refiner_weights(path):
    from sgdfuse_ros.fusion.weights import save_weights
    return save_weights(path, 'refiner', {'width': 3}, torch.nn.Linear(3, 2))


def _weights(tmp_path, kind):
    if kind == 'missing':
        return tmp_path / 'none' / 'first_stage.pt', 'not found'
    if kind == 'directory':
        (tmp_path / 'weights_dir').mkdir()
        return tmp_path / 'weights_dir', 'is a directory'
    if kind == 'device file':
        return '/dev/zero', 'not a regular file'  # torch.load would read it forever
    if kind == 'corrupt':
        path = tmp_path / 'corrupt.pt'
        _save_refiner_weights(path)
        path.write_bytes(path.read_bytes()[:150])
        return path, 'cannot be read'
    if kind == 'not a torch file':
        path = tmp_path / 'notes.pt'
        path.write_text('first_stage weights go here')
        return path, 'cannot be read'
    if kind == "other stage's weights":
        return _save_refiner_weights(tmp_path / 'refiner.pt'), "expected 'first_stage'"
    if kind == 'another architecture':
        from sgdfuse_ros.fusion.network import DEFAULT_ARCH
        from sgdfuse_ros.fusion.weights import save_weights
        path = save_weights(tmp_path / 'first_stage.pt', 'first_stage', DEFAULT_ARCH,
                            torch.nn.Linear(3, 2))  # the tensors of another network
        return path, 'do not match the architecture'
    raise AssertionError(kind)


def test_valid_first_stage_weights_load_and_fuse(tmp_path, frames):
    from sgdfuse_ros.fusion.network import DEFAULT_ARCH, FirstStageNet
    from sgdfuse_ros.fusion.weights import save_weights
    path = save_weights(tmp_path / 'first_stage.pt', 'first_stage', DEFAULT_ARCH,
                        FirstStageNet.from_arch(DEFAULT_ARCH))
    core, t = make_core({'first_stage.type': 'network', 'first_stage.weights': str(path),
                         'device': 'cpu'})
    thermal, visible, _ = frames
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    assert balanced(core)['output']['published'] == 1  # the checks let a good file through
    core.shutdown()


@pytest.mark.parametrize('kind', ['missing', 'directory', 'device file', 'corrupt',
                                  'not a torch file', "other stage's weights",
                                  'another architecture'])
def test_bad_first_stage_weights_leave_the_node_inactive_with_one_line(tmp_path, kind):
    path, needle = _weights(tmp_path, kind)
    core, t = make_core({'first_stage.type': 'network', 'first_stage.weights': str(path),
                         'device': 'cpu'}, start=False)
    core.configure()
    with pytest.raises(ConfigError) as err:
        core.activate()
    text = one_line(str(err.value))
    assert str(path) in text and needle in text, text
    assert core.state == 'inactive' and not any(t.subscriptions.values())
    core.shutdown()


def test_unreadable_weights_are_named(tmp_path, monkeypatch):
    import os
    path = tmp_path / 'first_stage.pt'
    _save_refiner_weights(path)
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if str(p) == str(path)
                        else real_access(p, mode))  # tests run as root: chmod would not do
    core, _ = make_core({'first_stage.type': 'network', 'first_stage.weights': str(path),
                         'device': 'cpu'}, start=False)
    core.configure()
    with pytest.raises(ConfigError, match='not readable'):
        core.activate()
    core.shutdown()


def test_missing_sam_checkpoint_stops_or_falls_back_loudly(tmp_path, frames):
    missing = tmp_path / 'sam_vit_b_01ec64.pth'
    core, _ = make_core({'prior.source': 'sam', 'prior.sam.checkpoint': str(missing),
                         'prior.on_sam_error': 'error', 'device': 'cpu'}, start=False)
    core.configure()
    with pytest.raises(ConfigError) as err:
        core.activate()
    assert str(missing) in one_line(str(err.value)) and 'SAM' in str(err.value)
    assert core.state == 'inactive'
    core.shutdown()
    thermal, visible, _ = frames
    core, t = make_core({'prior.source': 'sam', 'prior.sam.checkpoint': str(missing),
                         'prior.on_sam_error': 'fallback', 'device': 'cpu'})
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    report = processing(core)
    assert report['level'] == WARN and 'prior from thermal instead of sam' in report['message']
    assert str(missing) in report['values']['SAM last error']
    assert balanced(core)['output']['published'] == 1
    core.shutdown()


# --- the worker, the publisher, the diagnostics timer --------------------------------------------

class BrokenResult(EchoPipeline):
    """Returns, once, a result the node cannot read (a bug in a stage)."""

    def __init__(self, config):
        super().__init__(config)
        self.broken = False

    def process(self, *args):
        result = super().process(*args)
        if self.broken:
            self.broken = False
            result.timings = None
        return result


def test_the_worker_thread_survives_a_bug_and_accounts_for_the_pair(frames):
    thermal, visible, _ = frames
    core, t = make_core(CLASSICAL, factory=BrokenResult, threaded=True)
    core.pipeline.broken = True
    send_pair(t, 1.0, thermal, visible)
    assert core.wait_idle(5.0)
    send_pair(t, 2.0, thermal, visible)
    assert core.wait_idle(5.0)
    assert core._worker.is_alive()
    stats = balanced(core)
    assert stats['output']['worker_errors'] == 1
    assert len(t.sent('fused/image')) == 2  # the first was published before the bug struck
    core.shutdown()
    balanced(core)


def test_a_pipeline_bug_rejects_the_pair_not_the_node(frames):
    thermal, visible, _ = frames
    first = Stage(error=IndexError('index 4 is out of bounds'))
    core, t, _ = _core_with('no_refiner', first)
    first.failures = 1
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    send_pair(t, 2.0, thermal, visible)
    assert core.process_pending()
    stats = balanced(core)
    assert stats['inputs']['thermal']['rejected']['pipeline'] == 1
    assert stats['output']['published'] == 1
    core.shutdown()


def test_a_failing_publisher_drops_the_pair_and_the_next_one_goes_out(frames):
    thermal, visible, _ = frames
    core, t = make_core(CLASSICAL, factory=EchoPipeline)
    publisher = t.publishers[f'{NS}/fused/image'][0]
    real_publish, failures = publisher.publish, [1]

    def flaky(msg):
        if failures:
            failures.pop()
            raise OSError('network is unreachable')
        real_publish(msg)

    publisher.publish = flaky
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    send_pair(t, 2.0, thermal, visible)
    assert core.process_pending()
    stats = balanced(core)
    assert stats['inputs']['rgb']['dropped']['publish_failed'] == 1
    assert [messages.stamp_seconds(m) for m in t.sent('fused/image')] == [2.0]
    core.shutdown()


def test_diagnostics_never_raise_into_the_timer(frames, monkeypatch):
    core, t = make_core(CLASSICAL, factory=EchoPipeline)
    monkeypatch.setattr(core, 'stats', lambda: 1 / 0)
    t.fire_timers()  # the node's diagnostics timer: logs, does not raise
    monkeypatch.undo()
    t.fire_timers()
    assert t.sent('/diagnostics')
    core.shutdown()
