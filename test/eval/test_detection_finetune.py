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
The detection fine-tuning experiment's pieces (benchmarks/detection_finetune.py), tiny data.

Only the TRAIN split is read (the test files are unreadable here and never touched); the fused
image made in the graph is the pipeline's colour merge; the detection term reaches the first
stage through the frozen refiner, and lambda = 0 leaves only the fusion loss.
"""

import json
from pathlib import Path

from benchmark_support import benchmark_module
import cv2
import numpy as np
import pytest
from sgdfuse_ros.fusion.network import DEFAULT_ARCH, FirstStageNet
from sgdfuse_ros.fusion.refiner import RefinerNet
from sgdfuse_ros.pipeline.images import attenuate_chroma, merge_luma, split_luma
import torch


@pytest.fixture(scope='module')
def ft():
    with benchmark_module('detection_finetune') as module:
        yield module


def _write_set(root: Path):
    """Two 32x32 train pairs with a warm person; two test pairs whose files are not images."""
    for sub in ('ir', 'vis', 'labels/fusion/train', 'labels/fusion/test'):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(('00001D', '00002N')):
        ir = np.full((32, 32), 40, np.uint8)
        ir[8:20, 10:16] = 220
        vis = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'ir' / f'{name}.png'), ir)
        cv2.imwrite(str(root / 'vis' / f'{name}.png'), vis)
        (root / 'labels/fusion/train' / f'{name}.txt').write_text(
            '0 0.40625 0.4375 0.1875 0.375\n')
    for name in ('00003D', '00004N'):
        for sub in ('ir', 'vis'):
            (root / sub / f'{name}.png').write_bytes(b'not an image')
        (root / 'labels/fusion/test' / f'{name}.txt').write_text('0 0.5 0.5 0.2 0.2\n')
    (root / 'split.json').write_text(json.dumps({'train': ['00001D.png', '00002N.png'],
                                                 'test': ['00003D.png', '00004N.png']}))


def test_reads_only_the_train_split(ft, tmp_path):
    _write_set(tmp_path)
    train = ft.load_train(tmp_path)
    assert sorted(train['names']) == ['00001D', '00002N']
    assert train['planes'].shape == (2, 4, 32, 32) and train['chroma'].shape == (2, 2, 32, 32)
    assert [len(b) for b in train['boxes']] == [1, 1]
    np.testing.assert_allclose(train['boxes'][0][0], [10, 8, 16, 20], atol=1e-4)
    assert train['planes'][:, 2].max() > 0.25  # the thermal fallback prior found the person


def test_colour_merge_is_the_pipelines(ft):
    rng = np.random.default_rng(1)
    visible = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    visible[:8] //= 12  # a dark part: chroma faded there
    vis_y, chroma = split_luma(visible)
    fused = np.clip(vis_y + rng.normal(0, 0.2, vis_y.shape), 0, 1).astype(np.float32)
    bgr, _ = merge_luma(fused, attenuate_chroma(chroma, vis_y, fused))
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    rgb = ft.colour_merge(t(fused)[None, None], t(vis_y)[None, None],
                          t(chroma.transpose(2, 0, 1))[None] / 255.0)
    ours = ft.to_uint8_images(rgb)[0].transpose(1, 2, 0)
    diff = np.abs(ours.astype(int) - cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.5


def test_detection_term_reaches_the_first_stage_through_the_refiner(ft, tmp_path):
    _write_set(tmp_path)
    train = ft.load_train(tmp_path)
    torch.manual_seed(0)
    first_stage = FirstStageNet(**DEFAULT_ARCH)
    refiner = RefinerNet()
    for p in refiner.parameters():
        p.requires_grad_(False)
    with benchmark_module('detection') as det:
        detector = det.build_detector(size=32)
    detector.train()
    order, flips = np.arange(2), np.array([False, True])
    planes, chroma, boxes, labels = ft.batch_at(train, order, flips, slice(0, 2))
    assert boxes[1][0][0] == pytest.approx(32 - 16)  # the flipped item's box is mirrored
    terms = ft.joint_loss(first_stage, refiner, detector, planes, chroma, boxes, labels, 2.0)
    params = list(first_stage.parameters())
    grads = torch.autograd.grad(terms['detection'], params, retain_graph=True, allow_unused=True)
    norm = float(torch.sqrt(sum((g * g).sum() for g in grads if g is not None)))
    assert np.isfinite(norm) and norm > 0
    value = {k: float(v.detach()) for k, v in terms.items()}
    assert value['total'] == pytest.approx(value['fusion'] + 2.0 * value['detection'], rel=1e-5)
    terms['total'].backward()
    assert all(p.grad is None for p in refiner.parameters())  # frozen
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0)
               for p in detector.parameters())
    only_fusion = ft.joint_loss(first_stage, refiner, detector, planes, chroma, boxes, labels,
                                0.0)
    assert float(only_fusion['total'].detach()) == pytest.approx(
        float(only_fusion['fusion'].detach()))


def test_mixed_set_shares_the_fusion_loss_and_resumes_its_crops(ft, tmp_path):
    msrs, road = tmp_path / 'msrs', tmp_path / 'road'
    _write_set(msrs)
    _write_set(road)  # its test pairs are not images either: reading them would fail
    train = ft.load_train(msrs)
    args = type('Args', (), {'mix': road, 'mix_crop': 24, 'seed': 3})()
    sampler = ft.mix_sampler(args)
    assert sorted(s.name for s in sampler.samples) == ['00001D', '00002N']
    state = sampler.state()
    mix = torch.from_numpy(sampler.batch(4))
    assert mix.shape == (4, 4, 24, 24)
    sampler.set_state(state)  # what a resumed run restores from its checkpoint
    np.testing.assert_array_equal(sampler.batch(4), mix.numpy())
    torch.manual_seed(0)
    first_stage = FirstStageNet(**DEFAULT_ARCH)
    with benchmark_module('detection') as det:
        detector = det.build_detector(size=32)
    planes, chroma, boxes, labels = ft.batch_at(train, np.arange(2), np.zeros(2, bool),
                                                slice(0, 2))
    terms = ft.joint_loss(first_stage, None, detector, planes, chroma, boxes, labels, 0.0,
                          steps=0, mix_planes=mix)
    alone = ft.joint_loss(first_stage, None, detector, planes, chroma, boxes, labels, 0.0,
                          steps=0)
    value = {k: float(v.detach()) for k, v in terms.items()}
    assert value['fusion'] == pytest.approx(
        0.5 * (float(alone['fusion'].detach()) + value['fusion_mix']), rel=1e-5)
    assert value['fusion_mix'] != pytest.approx(float(alone['fusion'].detach()), rel=1e-3)
    grads = torch.autograd.grad(terms['fusion_mix'], list(first_stage.parameters()),
                                allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
