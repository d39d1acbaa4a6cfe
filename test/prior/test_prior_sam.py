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
SAM: checkpoint loading, the tiny model, the provider and the half-precision path.

Safe checkpoint loading through the registry, the tiny model end to end, the provider built from
the config, and the half-precision encoder path.
"""

import logging
import threading

import numpy as np
from prior_scenes import config_with, warm_scene
import pytest
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.pipeline import stages
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.prior.sam import (
    build_sam_provider,
    load_sam,
    random_sam,
    SamFrameEncoder,
    SamSegmenter,
    TINY_TEST_MODEL,
)
import torch
from waiting import wait_until as _wait_until


GRID_KEEP_ALL = {'pred_iou_thresh': 0.0, 'stability_score_thresh': 0.0}  # random weights


def _meta_state_dict(model_type):
    from segment_anything import sam_model_registry
    with torch.device('meta'):
        model = sam_model_registry[model_type]()
    return {k: v.shape for k, v in model.state_dict().items()}


@pytest.fixture(scope='module')
def vit_b_checkpoint(tmp_path_factory):
    """Write a full-size vit_b state dict (~375 MB, once per module), values irrelevant."""
    shapes = _meta_state_dict('vit_b')
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.zeros(s) for k, s in shapes.items()}
    marker = 'mask_decoder.iou_prediction_head.layers.0.weight'
    state[marker] = torch.randn(shapes[marker], generator=gen)
    path = tmp_path_factory.mktemp('sam') / 'sam_vit_b_random.pth'
    torch.save(state, path)
    yield path, state[marker]
    path.unlink()


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('tiny') / 'sam_tiny.pth'
    torch.save(random_sam(TINY_TEST_MODEL, seed=1).state_dict(), path)
    return path


def _one_line(err):
    text = str(err.value)
    assert '\n' not in text, text
    return text


def test_vit_b_checkpoint_loads_through_the_registry(vit_b_checkpoint):
    from segment_anything.modeling import Sam
    path, marker = vit_b_checkpoint
    model = load_sam(path, 'vit_b', 'cpu')
    assert isinstance(model, Sam) and not model.training
    assert model.image_encoder.img_size == 1024 and len(model.image_encoder.blocks) == 12
    assert torch.equal(model.mask_decoder.iou_prediction_head.layers[0].weight, marker)
    assert all(not p.is_meta and p.dtype == torch.float32 for p in model.parameters())
    assert float(model.pixel_mean.flatten()[0]) == pytest.approx(123.675)  # not in state dict


def test_checkpoint_of_another_model_type_is_named(vit_b_checkpoint, tmp_path):
    path, _ = vit_b_checkpoint
    with pytest.raises(ConfigError) as err:
        load_sam(path, 'vit_l')
    text = _one_line(err)
    assert str(path) in text and 'looks like a vit_b' in text and 'expected vit_l' in text
    # a vit_h-shaped file given as vit_b (a few keys with vit_h shapes: cheap to write)
    vit_h = _meta_state_dict('vit_h')
    names = ('image_encoder.patch_embed.proj.weight', 'image_encoder.pos_embed',
             'mask_decoder.iou_token.weight')
    fake = {k: torch.zeros(vit_h[k]) for k in names}
    fake_path = tmp_path / 'sam_vit_h_4b8939.pth'
    torch.save(fake, fake_path)
    with pytest.raises(ConfigError) as err:
        load_sam(fake_path, 'vit_b')
    text = _one_line(err)
    assert str(fake_path) in text and 'looks like a vit_h' in text and 'expected vit_b' in text
    assert 'shape mismatches' in text and 'missing keys' in text


@pytest.mark.parametrize('content, expected', [
    (None, 'not found'),
    (b'', 'is empty'),
    (b'\x80\x02garbage that is no zip and no pickle', 'cannot be read safely'),
    ('list', 'not a state dict'),
    ('ints', 'not a state dict'),
    ('other_net', 'has no SAM image encoder weights'),
])
def test_bad_checkpoint_files_give_one_line(tmp_path, content, expected):
    path = tmp_path / 'sam_vit_b.pth'
    if content == 'list':
        torch.save([torch.zeros(3)], path)
    elif content == 'ints':
        torch.save({'a': 1}, path)
    elif content == 'other_net':
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_sam(path, 'vit_b')
    text = _one_line(err)
    assert str(path) in text and expected in text


class _Payload:
    """Unpickling this would create a file: weights_only loading must refuse it."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def test_pickled_code_is_not_run(tmp_path):
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'image_encoder.x': _Payload(str(target))}, path)
    with pytest.raises(ConfigError) as err:
        load_sam(path, 'vit_b')
    text = _one_line(err)
    assert 'cannot be read safely' in text and 'could run code' in text
    assert not target.exists()


def _config(tiny_checkpoint, **overrides):
    values = {'prior.source': 'sam', 'prior.sam.checkpoint': str(tiny_checkpoint),
              'prior.every_frame': True, 'prior.sam.min_area': 16, 'device': 'cpu'}
    values.update(overrides)
    return config_with(values)


def test_tiny_sam_end_to_end_prompts_masks_prior(tiny_checkpoint):
    model = load_sam(tiny_checkpoint, TINY_TEST_MODEL)
    segmenter = SamSegmenter(model, max_points=4, auto_grid=4, min_area=16,
                             grid_options=GRID_KEEP_ALL)
    thermal, visible, masks = warm_scene((240, 320))
    prior = segmenter(thermal, visible)
    assert prior.source == 'sam' and prior.shape == (240, 320)
    assert prior.labels.dtype == np.uint16 and prior.targets.dtype == np.float32
    assert set(segmenter.last_timings) == {'encoder', 'prompts', 'decoder', 'grid', 'merge'}
    assert segmenter.last_input == 'visible'
    n = prior.num_regions
    assert n >= 4 and set(np.unique(prior.labels)) == set(range(n + 1))  # 1..N, no gaps
    for label in range(1, n + 1):
        assert np.count_nonzero(prior.labels == label) >= 16  # min_area after overlaps
    # every warm target is covered by a target region (SAM mask, or its blob as a stand-in)
    for mask in masks:
        assert prior.targets[mask].mean() > 0.5
    assert 0.0 <= prior.targets.min() and prior.targets.max() <= 1.0
    assert prior.boundaries.max() == 1.0


def test_embedding_computed_once_per_frame_with_the_grid(tiny_checkpoint, monkeypatch):
    model = load_sam(tiny_checkpoint, TINY_TEST_MODEL)
    segmenter = SamSegmenter(model, max_points=4, auto_grid=2, grid_options=GRID_KEEP_ALL)
    calls = []
    patch_embed = model.image_encoder.patch_embed
    original = patch_embed.forward
    monkeypatch.setattr(patch_embed, 'forward', lambda x: calls.append(1) or original(x))
    thermal, visible, _ = warm_scene((120, 160))
    segmenter(thermal, visible)
    segmenter(thermal, visible)
    assert len(calls) == 2


def _gated_encoder(model, monkeypatch, gate, wait_s=30.0):
    """Make each encoder block wait for ``gate``; return the list of blocks entered, in order."""
    entered = []
    for index, block in enumerate(model.image_encoder.blocks):
        original = block.forward

        def slow(x, f=original, index=index):
            entered.append(index)
            gate.wait(wait_s)
            return f(x)
        monkeypatch.setattr(block, 'forward', slow)
    return entered


def test_cancel_stops_a_running_computation_at_the_next_layer(tiny_checkpoint, monkeypatch):
    # Ordered by events, not by sleeps: the outcome is the same on a busy CPU.
    from sgdfuse_ros.prior.provider import PriorProvider
    from sgdfuse_ros.prior.thermal import ThermalPrior
    model = load_sam(tiny_checkpoint, TINY_TEST_MODEL)
    assert len(model.image_encoder.blocks) == 2
    gate = threading.Event()
    entered = _gated_encoder(model, monkeypatch, gate)
    segmenter = SamSegmenter(model, max_points=2)
    provider = PriorProvider(segmenter, ThermalPrior(), every_frame=False, rate_hz=10.0,
                             timeout_s=0.1, backoff_base_s=5.0)
    thermal, visible, _ = warm_scene((120, 160))
    provider(thermal, None, visible)
    _wait_until(lambda: entered == [0], 'the first encoder block')
    # the frame thread declares it overdue after 0.1 s and falls back without waiting for it
    _wait_until(lambda: provider(thermal, None, visible).source == 'thermal'
                and provider.stats()['sam_timeouts'] == 1, 'the timeout')
    assert provider.stats()['worker_busy']
    gate.set()  # the first block returns; the cancel request stops it before the second
    _wait_until(lambda: not provider.stats()['worker_busy'], 'the worker to stop computing')
    assert entered == [0]
    provider(thermal, None, visible)  # inside the back-off: nothing new starts
    assert provider.worker.close(timeout_s=20.0) and not provider.worker.alive
    assert provider.stats()['sam_runs'] == 0 and provider.stats()['sam_failures'] == 1
    # the next synchronous call starts afresh (the cancel flag does not stick)
    monkeypatch.undo()
    assert segmenter(thermal, visible).source == 'sam'


def test_close_cancels_a_running_computation(tiny_checkpoint, monkeypatch):
    from sgdfuse_ros.prior.provider import PriorProvider
    from sgdfuse_ros.prior.thermal import ThermalPrior
    model = load_sam(tiny_checkpoint, TINY_TEST_MODEL)
    gate = threading.Event()
    entered = _gated_encoder(model, monkeypatch, gate)
    provider = PriorProvider(SamSegmenter(model, max_points=2), ThermalPrior(),
                             every_frame=False, timeout_s=30.0)
    thermal, visible, _ = warm_scene((120, 160))
    provider(thermal, None, visible)
    _wait_until(lambda: entered == [0], 'the first encoder block')
    assert provider.stats()['worker_busy']
    releaser = threading.Timer(0.2, gate.set)  # the block in progress ends while close waits
    releaser.start()
    ended = provider.worker.close(timeout_s=20.0)
    releaser.join()
    # close asked it to cancel: it ended after the block in progress, never entering the second
    assert ended and not provider.worker.alive and entered == [0]


def test_dark_visible_frame_is_segmented_on_thermal(tiny_checkpoint):
    model = load_sam(tiny_checkpoint, TINY_TEST_MODEL)
    segmenter = SamSegmenter(model, max_points=2)
    thermal, visible, _ = warm_scene((120, 160))
    segmenter(thermal, np.zeros_like(visible))
    assert segmenter.last_input == 'thermal'
    segmenter(thermal, visible[..., 0])  # a mono visible camera
    assert segmenter.last_input == 'visible'


def test_half_precision_encoder_matches_float32(tiny_checkpoint):
    thermal, visible, _ = warm_scene((120, 160))
    rgb = np.ascontiguousarray(visible[..., ::-1])
    full = SamFrameEncoder(load_sam(tiny_checkpoint, TINY_TEST_MODEL))
    full.embed(rgb)
    try:
        half = SamFrameEncoder(load_sam(tiny_checkpoint, TINY_TEST_MODEL),
                               encoder_dtype=torch.float16)
        half.embed(rgb)
    except RuntimeError as err:  # some CPU builds lack float16 kernels; CUDA has them
        pytest.skip(f'float16 not supported on this CPU build: {err}')
    assert half.features.dtype == torch.float32
    assert torch.allclose(half.features, full.features, atol=0.05, rtol=0.05)


def test_provider_from_config_every_frame(tiny_checkpoint):
    provider = build_sam_provider(_config(tiny_checkpoint), 'cpu', model_type=TINY_TEST_MODEL)
    thermal, visible, _ = warm_scene((120, 160))
    prior = provider(thermal, None, visible)
    assert prior.source == 'sam' and prior.age_s == 0.0
    stats = provider.stats()
    assert stats['mode'] == 'every_frame' and stats['sam_runs'] == 1
    assert stats['fallback_frames'] == 0 and stats['active_source'] == 'sam'
    provider.close()


def test_missing_checkpoint_error_or_loud_fallback(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv('SGDFUSE_SAM_CHECKPOINT', raising=False)
    missing = tmp_path / 'nowhere' / 'sam_vit_b_01ec64.pth'
    config = config_with({'prior.source': 'sam', 'prior.sam.checkpoint': str(missing),
                          'prior.on_sam_error': 'error', 'device': 'cpu'})
    with pytest.raises(ConfigError) as err:
        build_sam_provider(config, 'cpu')
    assert str(missing) in _one_line(err) and 'vit_b' in str(err.value)
    with pytest.raises(ConfigError):
        FusionPipeline(config)
    config['prior.on_sam_error'] = 'fallback'
    with caplog.at_level(logging.WARNING, logger='sgdfuse_ros'):
        provider = build_sam_provider(config, 'cpu')
    assert any('THERMAL FALLBACK' in r.getMessage() and str(missing) in r.getMessage()
               for r in caplog.records)
    thermal, visible, _ = warm_scene((120, 160))
    prior = provider(thermal, None, visible)
    assert prior.source == 'thermal' and prior.num_regions > 0
    stats = provider.stats()
    assert stats['mode'] == 'unavailable' and str(missing) in stats['last_error']
    assert stats['fallback_frames'] == 1
    provider.close()
    # no checkpoint configured at all
    config['prior.sam.checkpoint'] = ''
    config['prior.on_sam_error'] = 'error'
    with pytest.raises(ConfigError, match=r'needs a SAM vit_b checkpoint: set '
                       r'prior.sam.checkpoint or \$SGDFUSE_SAM_CHECKPOINT, or put '
                       r'sam_vit_b_01ec64.pth in '):
        build_sam_provider(config, 'cpu')


def test_pipeline_reports_the_sam_prior(tiny_checkpoint, monkeypatch):
    monkeypatch.setitem(stages.PRIOR_SOURCES, 'sam', lambda config, device: build_sam_provider(
        config, device, model_type=TINY_TEST_MODEL))
    thermal, visible, _ = warm_scene((120, 160))
    with FusionPipeline(_config(tiny_checkpoint)) as pipeline:
        result = pipeline.process((thermal * 255).astype(np.uint8), visible)
        assert result.prior.source == 'sam' and result.prior_source == 'sam'
        assert result.labels.shape == (120, 160)


EXIT_SCRIPT = r"""
import sys, time, torch
sys.path.insert(0, {test_dir!r})
from prior_scenes import warm_scene
from sgdfuse_ros.prior.provider import PriorProvider
from sgdfuse_ros.prior.sam import SamSegmenter, random_sam, TINY_TEST_MODEL
from sgdfuse_ros.prior.thermal import ThermalPrior
model = random_sam(TINY_TEST_MODEL)
big = torch.randn(500, 500)
for block in model.image_encoder.blocks:
    original = block.forward
    def slow(x, f=original):
        for _ in range(150):
            torch.mm(big, big)  # long C++ calls between two layers (~1 s on 2 idle cores)
        return f(x)
    block.forward = slow
provider = PriorProvider(SamSegmenter(model, max_points=2), ThermalPrior(), every_frame=False)
thermal, visible, _ = warm_scene((120, 160))
provider(thermal, None, visible)
deadline = time.monotonic() + 20.0
while not provider.stats()["worker_busy"]:
    assert time.monotonic() < deadline, "the worker never started"
    time.sleep(0.01)
time.sleep(0.05)  # inside the slow encoder
assert provider.stats()["worker_busy"]
print("leaving without close()", flush=True)
"""


def test_exit_without_close_while_sam_runs_does_not_abort(tmp_path):
    """
    Exit cleanly with a daemon SAM thread still inside torch.

    Without the worker's atexit hook this aborts ("terminate called without an active exception",
    exit status 134).
    """
    from pathlib import Path
    import subprocess
    import sys
    script = tmp_path / 'exit_busy.py'
    script.write_text(EXIT_SCRIPT.format(test_dir=str(Path(__file__).parents[1])))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert 'leaving without close()' in done.stdout, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'terminate called' not in done.stderr
