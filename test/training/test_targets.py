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

"""Warm targets in training: the box measure, the contrast loss, the gate, SAM-like priors."""

import numpy as np
import pytest
from sgdfuse_ros.eval.target_boxes import (box_and_ring, contrast_ratios, read_boxes, summarise,
                                           warm_boxes)
from sgdfuse_ros.fusion.network import FirstStageNet
from sgdfuse_ros.prior.boxes import box_silhouette, synthetic_sam_prior
from sgdfuse_ros.training.data import MixedCropSampler, Sample
from sgdfuse_ros.training.loop import selection_score
from sgdfuse_ros.training.losses import target_contrast_deficit
import torch


def scene(h=64, w=64):
    """Return a cool background with one warm 8x16 person at (20..28, 24..40) and one cold box."""
    ir = np.full((h, w), 60.0)
    ir[24:40, 20:28] = 120.0
    ir[5:12, 40:50] = 62.0
    return ir


def test_read_boxes_is_yolo_in_pixels_and_keeps_person_and_car(tmp_path):
    f = tmp_path / 'a.txt'
    f.write_text('0 0.375 0.5 0.125 0.25\n1 0.5 0.5 0.1 0.1\n2 0.7 0.13 0.16 0.11\n\n')
    boxes = read_boxes(f, (64, 64))
    assert [b[0] for b in boxes] == [0, 2]  # the bicycle is left out
    assert boxes[0] == (0, 20, 24, 28, 40)
    assert read_boxes(tmp_path / 'missing.txt', (64, 64)) == []


def test_box_measure_is_the_contrast_ratio_of_warm_boxes_only():
    ir = scene()
    boxes = [(0, 20, 24, 28, 40), (2, 40, 5, 50, 12)]
    warm = warm_boxes(ir, boxes)
    assert len(warm) == 1 and warm[0]['thermal_contrast'] == pytest.approx(60.0)
    inside, ring = box_and_ring(boxes[0], ir.shape)
    assert ring.sum() == (8 + 8) * (16 + 8) - 8 * 16 and not (inside & ring).any()
    fused = 100.0 + 0.5 * (ir - 60.0)  # half the contrast, another level
    assert contrast_ratios(fused, warm) == [pytest.approx(0.5)]
    s = summarise({'00001N': [0.5, 1.0], '00002D': [0.96]})
    assert s['all']['boxes'] == 3 and s['night']['median'] == pytest.approx(0.75)
    assert s['day']['kept'] == 1.0 and s['all']['kept'] == pytest.approx(2 / 3)


def test_target_contrast_loss_costs_only_lost_target_contrast():
    ir = torch.from_numpy(scene() / 255.0).float()[None, None]
    targets = torch.zeros_like(ir)
    targets[..., 24:40, 20:28] = 1.0
    assert target_contrast_deficit(ir, ir, targets).item() == pytest.approx(0.0, abs=1e-6)
    flat = 0.5 * ir + 0.2
    lost = target_contrast_deficit(flat, ir, targets).item()
    assert lost == pytest.approx(0.5 * 60 / 255, rel=0.05)
    stronger = target_contrast_deficit(1.2 * ir - 0.05, ir, targets).item()
    assert stronger == pytest.approx(0.0, abs=1e-6)
    assert target_contrast_deficit(flat, ir, torch.zeros_like(ir)).item() == 0.0


def test_target_gate_is_the_identity_without_a_prior_and_acts_with_one():
    torch.manual_seed(0)
    plain = FirstStageNet(fine_vis=True)
    gated = FirstStageNet(fine_vis=True, target_gate=True)
    state = gated.state_dict()
    for name, value in plain.state_dict().items():  # same weights; the gate row is extra
        state[name][:value.shape[0]] = value
    torch.nn.init.normal_(state['net.head.weight'][plain.gate_channel:], std=0.3)
    gated.load_state_dict(state)
    ir = torch.from_numpy(scene() / 255.0).float()[None, None]
    vis = torch.full_like(ir, 0.5)
    zeros = torch.zeros_like(ir)
    with torch.no_grad():
        assert torch.allclose(plain(ir, vis, zeros, zeros), gated(ir, vis, zeros, zeros))
        targets = zeros.clone()
        targets[..., 24:40, 20:28] = 1.0
        out = gated(ir, vis, targets, zeros)
        base = plain(ir, vis, targets, zeros)
    inside = targets[0, 0] > 0
    assert not torch.allclose(out, base)
    assert 'target_gate' not in plain.arch and gated.arch['target_gate'] is True
    # the gate pulls the target towards its thermal contrast, never away from it
    ring = torch.zeros_like(inside)
    ring[20:44, 16:32] = True
    ring &= ~inside
    c = lambda img: (img[0, 0][inside].mean() - img[0, 0][ring].mean()).item()  # noqa: E731
    assert abs(c(out) - c(ir)) < abs(c(base) - c(ir))


def sample(name, group, boxes=None, size=32):
    rng = np.random.default_rng(len(name))
    ir = rng.random((size, size), np.float32)
    z = np.zeros((size, size), np.float32)
    return Sample(name, ir, ir, z + 0.7, z, np.zeros((size, size, 2), np.uint8),
                  (ir * 255).astype(np.uint8), np.zeros((size, size, 3), np.uint8),
                  boxes, group)


def test_mixed_sampler_takes_each_set_in_turn_and_is_seeded():
    a = [sample('a', 'roadscene', size=40)]
    b = [sample('b', 'msrs', size=32)]
    first = MixedCropSampler([a, b], 32, seed=3, empty_prior=0.0).batch(6)
    again = MixedCropSampler([a, b], 32, seed=3, empty_prior=0.0).batch(6)
    assert np.array_equal(first, again)
    rows_b = {first[i, 0].tobytes() for i in (1, 3, 5)}
    flips = {b[0].thermal.tobytes(), b[0].thermal[:, ::-1].copy().tobytes()}
    assert rows_b <= flips  # odd items are the 32x32 MSRS sample (whole, maybe flipped)


def test_sam_like_priors_come_from_the_boxes():
    ir = (scene() / 255.0).astype(np.float32)
    box = (0, 20, 24, 28, 40)
    mask = box_silhouette(ir, box)
    assert mask[24:40, 20:28].mean() > 0.8 and not mask[:, :18].any()
    jittered = [box_silhouette(ir, box, np.random.default_rng(s)) for s in range(6)]
    assert any(not np.array_equal(j, mask) for j in jittered)
    assert all(np.logical_xor(j, mask).sum() <= 2 * (8 + 16) + 4 for j in jittered)
    prior = synthetic_sam_prior(ir, [box, (2, 40, 5, 50, 12)])
    assert prior.source == 'sam'
    assert prior.targets[26:38, 21:27].min() >= 0.5  # the warm person is a target
    assert prior.targets[5:12, 40:50].max() < 0.5    # the cold car box is not
    assert prior.labels[5:12, 40:50].max() > 0       # but it is a region


def test_selection_counts_each_data_set_and_the_targets_once():
    ref = {'EN': 1.0, 'SD': 1.0}
    metrics = {'EN': 2.0, 'SD': 1.0}
    assert selection_score(metrics, ref) == pytest.approx(np.mean([0.25, 0.0]))
    grouped = {'groups': {'a': {'EN': 1.0, 'SD': 1.0}, 'b': {'EN': 2.0, 'SD': 2.0}},
               'targets': {'all': 0.9, 'night': 1.0, 'day': 0.8}}
    grouped_ref = {'groups': {'a': ref, 'b': ref},
                   'targets': {'all': 0.9, 'night': 0.9, 'day': 0.9}}
    assert selection_score(grouped, grouped_ref) == pytest.approx(np.mean([0.0, 0.25, 0.0]))
