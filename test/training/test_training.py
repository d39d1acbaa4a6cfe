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

"""Training: seeded crops from TRAIN pairs only, the loss goes down, resume is exact, CLI."""

import json

import cv2
import numpy as np
import pytest
from sgdfuse_ros.cli import main as cli_main
from sgdfuse_ros.fusion.network import load_first_stage
from sgdfuse_ros.fusion.refiner import load_refiner
from sgdfuse_ros.training.data import CropSampler, load_samples, split_train_names
from sgdfuse_ros.training.loop import train
from sgdfuse_ros.training.losses import DEFAULT_WEIGHTS, fusion_losses
from sgdfuse_ros.training.tasks import FirstStageTask, RefinerTask
import torch

ARCH = {'levels': 4, 'c1': 8, 'c2': 16, 'blocks': 1}
REFINER_ARCH = {'c1': 8, 'c2': 16, 'blocks': 1, 'temb': 8, 'schedule': 'cosine', 'T': 1000,
                't_start': 200}


@pytest.fixture
def data_dir(tmp_path):
    """
    Make a RoadScene-layout folder: 3 train pairs and 1 test pair.

    The test images are unreadable, so any attempt to read the test split fails loudly.
    """
    root = tmp_path / 'data'
    (root / 'ir').mkdir(parents=True)
    (root / 'vis').mkdir()
    rng = np.random.default_rng(0)
    names = ['a', 'b', 'c']
    for i, name in enumerate(names):
        h, w = 72, 88
        yy, xx = np.mgrid[0:h, 0:w]
        ir = 60 + 20 * rng.random((h, w))
        ir[(yy - 30 - i) ** 2 + (xx - 40) ** 2 < 100] = 230
        vis = 128 + 80 * np.sin(xx / (4.0 + i)) * (yy > 20) + 10 * rng.random((h, w))
        cv2.imwrite(str(root / 'ir' / f'{name}.jpg'), np.clip(ir, 0, 255).astype(np.uint8))
        bgr = np.dstack([vis, vis * 0.8, vis * 0.6])
        cv2.imwrite(str(root / 'vis' / f'{name}.jpg'), np.clip(bgr, 0, 255).astype(np.uint8))
    (root / 'ir' / 't.jpg').write_text('test pair: must never be read')
    (root / 'vis' / 't.jpg').write_text('test pair: must never be read')
    (root / 'split.json').write_text(json.dumps({'train': names, 'test': ['t']}))
    return root


def test_split_and_sampler_are_seeded_and_train_only(data_dir):
    train_names, val_names = split_train_names(data_dir, val_every=3)
    assert sorted(train_names + val_names) == ['a', 'b', 'c'] and len(val_names) == 1
    samples = load_samples(data_dir, train_names)
    a = CropSampler(samples, 32, seed=5).batch(4)
    b = CropSampler(samples, 32, seed=5).batch(4)
    c = CropSampler(samples, 32, seed=6).batch(4)
    assert a.shape == (4, 4, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_losses_prefer_a_fusion_over_one_source():
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    blob = ((yy - 20) ** 2 + (xx - 24) ** 2 < 81).astype(np.float32)
    ir = torch.from_numpy(0.2 + 0.7 * blob)[None, None]
    vis = torch.from_numpy(0.5 + 0.3 * np.sin(xx / 3.0) * (yy > 30))[None, None]
    targets = torch.from_numpy(blob)[None, None]
    fused = 0.75 * (ir + vis) - 0.25 * (ir.mean() + vis.mean())  # contrast-keeping sum
    losses = lambda f: fusion_losses(f.clamp(0, 1), ir, vis, targets)  # noqa: E731
    assert losses(fused)['total'] < losses(vis)['total']
    assert losses(fused)['total'] < losses(ir)['total']
    # the target-weighted intensity term alone (the visible-led term would favour the visible
    # image here: its background is 0.3 brighter than the thermal one)
    plain = dict(DEFAULT_WEIGHTS, visible_lead=0.0, lead_edges=0.0)
    assert fusion_losses(fused.clamp(0, 1), ir, vis, targets, plain)['intensity'] < \
        fusion_losses(vis, ir, vis, targets, plain)['intensity']


def _sky_scene():
    """
    Make a daylight scene: a sky on top, a road with a warm target below.

    Top half: a daylight sky (visible bright and smooth, thermal cold and noisy); bottom half: a
    road with a warm target that both cameras see.
    """
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    sky = yy < 32
    ir = np.where(sky, 0.15 + 0.08 * rng.standard_normal((64, 64)), 0.5).astype(np.float32)
    blob = ((yy - 48) ** 2 + (xx - 32) ** 2 < 64).astype(np.float32)
    ir = np.clip(ir + 0.45 * blob, 0, 1)
    vis = np.where(sky, 0.85, 0.45 + 0.1 * np.sin(xx / 2.0)).astype(np.float32)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]  # noqa: E731
    return t(ir), t(vis), t(blob), t(sky.astype(np.float32))


def test_visible_lead_map_marks_the_daylight_sky_only():
    from sgdfuse_ros.training.losses import visible_lead_map
    ir, vis, targets, sky = _sky_scene()
    lead = visible_lead_map(ir, vis)
    assert float(lead[..., 4:28, :].min()) > 0.9  # sky, away from the horizon
    assert float(lead[..., 36:, :].max()) == 0.0  # road and warm target


def test_visible_lead_makes_thermal_sky_clutter_cost():
    """
    The visible-led terms make the visible sky win over the thermal one.

    Without the visible-led terms the losses prefer the thermal camera's noisy sky (the artefact);
    with them, the visible sky wins, and the warm target still keeps its level.
    """
    ir, vis, targets, sky = _sky_scene()
    base = 0.75 * (ir + vis) - 0.25 * (ir.mean() + vis.mean())
    thermal_sky = torch.where(sky > 0, ir, base).clamp(0, 1)
    visible_sky = torch.where(sky > 0, vis, base).clamp(0, 1)
    off = dict(DEFAULT_WEIGHTS, visible_lead=0.0, lead_edges=0.0)
    on = dict(DEFAULT_WEIGHTS, visible_lead=1.0, lead_edges=1.0)
    assert fusion_losses(thermal_sky, ir, vis, targets, off)['total'] < \
        fusion_losses(visible_sky, ir, vis, targets, off)['total']
    assert fusion_losses(visible_sky, ir, vis, targets, on)['total'] < \
        fusion_losses(thermal_sky, ir, vis, targets, on)['total']
    # the road half is unchanged, so a fused image darker on the warm target still costs more
    dim_target = torch.where(targets > 0, vis, visible_sky)
    assert fusion_losses(dim_target, ir, vis, targets, on)['intensity'] > \
        fusion_losses(visible_sky, ir, vis, targets, on)['intensity']


def test_visible_lead_off_gives_the_original_losses():
    ir, vis, targets, _ = _sky_scene()
    fused = (0.5 * (ir + vis)).clamp(0, 1)
    plain = {k: v for k, v in DEFAULT_WEIGHTS.items() if k not in ('visible_lead', 'lead_edges')}
    a = fusion_losses(fused, ir, vis, targets, plain)
    b = fusion_losses(fused, ir, vis, targets, dict(plain, visible_lead=0.0, lead_edges=0.0))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert fusion_losses(fused, ir, vis, targets, dict(plain, lead_edges=1.0))['gradient'] != \
        a['gradient']


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_first_stage_training_lowers_the_loss_and_resumes_exactly(data_dir, tmp_path):
    samples = load_samples(data_dir, ['a', 'b', 'c'])
    fixed = torch.from_numpy(CropSampler(samples, 32, seed=99).batch(6))

    def run(work, steps, stop_after=None, resume=False, task=None):
        torch.manual_seed(0)
        task = task or FirstStageTask(ARCH)
        sampler = CropSampler(samples, 32, seed=1)
        train(task, sampler, [], tmp_path / f'{work}.pt', tmp_path / work, steps, 3, lr=5e-3,
              resume=resume, val_every=0, quiet=True, stop_after=stop_after)
        return task

    torch.manual_seed(0)
    with torch.no_grad():
        before = float(FirstStageTask(ARCH).loss(fixed)['total'])
    straight = run('straight', 24)
    with torch.no_grad():
        after = float(straight.loss(fixed)['total'])
    assert after < before

    run('split', 24, stop_after=12)
    resumed = run('split', 24, resume=True)
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=1e-6)
    log_lines = (tmp_path / 'split' / 'log.jsonl').read_text().splitlines()
    log = [json.loads(line) for line in log_lines]
    assert max(r['step'] for r in log) == 24
    model = load_first_stage(tmp_path / 'split.pt')  # written through the real loader
    assert model.info['steps'] == 24


def test_refiner_training_runs_and_writes_loadable_weights(data_dir, tmp_path):
    samples = load_samples(data_dir, ['a', 'b'])
    val = load_samples(data_dir, ['c'])
    torch.manual_seed(0)
    first = FirstStageTask(ARCH).model.eval()
    task = RefinerTask(REFINER_ARCH, first)
    summary = train(task, CropSampler(samples, 32, seed=2), val, tmp_path / 'refiner.pt',
                    tmp_path / 'work', 6, 2, val_every=3, quiet=True)
    assert summary['steps'] == 6 and summary['best_metrics'] is not None
    refiner = load_refiner(tmp_path / 'refiner.pt', steps=2)
    ir = samples[0].thermal
    out = refiner(ir, samples[0].visible_y, None, ir)
    assert out.shape == ir.shape


def test_train_command_end_to_end(data_dir, tmp_path, capsys):
    out = tmp_path / 'fs.pt'
    code = cli_main(['train', 'first-stage', '--data', str(data_dir), '--out', str(out),
                     '--work', str(tmp_path / 'w'), '--steps', '3', '--batch', '2', '--crop',
                     '32', '--val-pairs', '0', '--arch', json.dumps(ARCH)])
    assert code == 0 and out.is_file()
    assert 'ETA' in capsys.readouterr().err
    assert load_first_stage(out).info['train_pairs'] == 3
    code = cli_main(['train', 'first-stage', '--data', str(data_dir), '--crop', '33'])
    assert code == 2
