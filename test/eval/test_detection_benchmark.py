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
The detection benchmark's pieces on tiny synthetic data (benchmarks/detection.py).

Box loading (YOLO -> pixel boxes, day/night from the name), the torchmetrics scoring (perfect,
shifted and missing detections, the day/night selection), the analysis' "found" matching, and
one training step plus a resumed epoch of the detector.
"""

import hashlib
import json
from pathlib import Path

from benchmark_support import benchmark_module
import cv2
import numpy as np
import pytest


@pytest.fixture(scope='module')
def det():
    with benchmark_module('detection') as module:
        yield module


def _write_set(root: Path):
    """Two 32x32 pairs: a day one with a person and a car, a night one with nothing."""
    (root / 'ir').mkdir(parents=True)
    (root / 'labels' / 'fusion' / 'test').mkdir(parents=True)
    gray = np.zeros((32, 32), np.uint8)
    gray[8:16, 4:12] = 200
    for name in ('00001D.png', '00002N.png'):
        cv2.imwrite(str(root / 'ir' / name), gray)
    split = {'train': [], 'test': ['00001D.png', '00002N.png']}
    (root / 'split.json').write_text(json.dumps(split))
    # person centred at (8, 12) px, 8x8; car overhanging the right edge (clipped); a bad row
    (root / 'labels' / 'fusion' / 'test' / '00001D.txt').write_text(
        '0 0.25 0.375 0.25 0.25\n2 0.9375 0.5 0.25 0.5\nnot a box\n')
    (root / 'labels' / 'fusion' / 'test' / '00002N.txt').write_text('')


def test_boxes_and_split_loading(det, tmp_path):
    _write_set(tmp_path)
    split = det.load_split(tmp_path, 'test', tmp_path / 'ir')
    assert split['images'].shape == (2, 3, 32, 32) and split['images'].dtype == np.uint8
    assert split['images'][0, :, 10, 6].tolist() == [200, 200, 200]   # gray -> 3 channels
    assert split['night'].tolist() == [False, True]
    np.testing.assert_allclose(split['boxes'][0], [[4, 8, 12, 16], [26, 8, 32, 24]])
    assert split['labels'][0].tolist() == [0, 2]
    assert split['boxes'][1].shape == (0, 4) and split['labels'][1].shape == (0,)
    boxes, labels = det.read_boxes(tmp_path / 'missing.txt')
    assert boxes.shape == (0, 4) and labels.shape == (0,)
    np.testing.assert_allclose(det.flip_boxes(split['boxes'][0], 32),
                               [[20, 8, 28, 16], [0, 8, 6, 24]])


def _pred(boxes, scores, labels):
    return {'boxes': np.array(boxes, np.float32).reshape(-1, 4),
            'scores': np.array(scores, np.float32), 'labels': np.array(labels, np.int64)}


def test_map_scores_with_torchmetrics(det):
    pytest.importorskip('torchmetrics')  # requirements.txt; a ROS venv may lack it
    gt_boxes = [np.array([[10, 10, 30, 30], [50, 50, 90, 70]], np.float32),
                np.array([[20, 20, 40, 40]], np.float32)]
    gt_labels = [np.array([0, 2]), np.array([0])]
    perfect = [_pred(b, [0.9] * len(b), c) for b, c in zip(gt_boxes, gt_labels)]
    full = det.map_scores(perfect, gt_boxes, gt_labels)
    assert full['map_50'] == 100.0 and full['map'] == 100.0
    assert full['map_50_person'] == 100.0 and full['map_50_car'] == 100.0
    assert 'map_50_bicycle' not in full            # no bicycle box: no entry, not a zero
    # boxes shifted by 2 px: IoU 0.68 (persons) and 0.75 (car): found at 0.5, not at 0.8
    shifted = [_pred(b + 2, [0.9] * len(b), c) for b, c in zip(gt_boxes, gt_labels)]
    s = det.map_scores(shifted, gt_boxes, gt_labels)
    assert s['map_50'] == 100.0 and 20.0 < s['map'] < 80.0
    # the second (night) image's person is missed: all drops, the day image alone stays perfect
    missed = [perfect[0], _pred([], [], [])]
    night = np.array([False, True])
    assert det.map_scores(missed, gt_boxes, gt_labels)['map_50_person'] < 100.0
    assert det.map_scores(missed, gt_boxes, gt_labels, ~night)['map_50'] == 100.0
    assert det.map_scores(missed, gt_boxes, gt_labels, night)['map_50'] == 0.0
    # the right box with the wrong class does not count
    wrong = [_pred(b, [0.9] * len(b), 1 - np.minimum(c, 1)) for b, c in zip(gt_boxes, gt_labels)]
    assert det.map_scores(wrong, gt_boxes, gt_labels)['map_50_person'] == 0.0


def test_found_mask_matches_class_score_and_iou(det):
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    labels = np.array([0, 0, 2])
    pred = _pred([[0, 0, 10, 10], [0, 0, 10, 10], [21, 21, 31, 31], [40, 40, 50, 50]],
                 [0.9, 0.8, 0.2, 0.9], [0, 0, 0, 0])
    # box 1: one-to-one (the duplicate finds nothing more); box 2: score too low; box 3: class
    assert det.found_mask(pred, gt, labels).tolist() == [True, False, False]
    assert det.found_mask(pred, gt, labels, score=0.1).tolist() == [True, True, False]
    assert det.box_contrast(np.pad(np.full((4, 4), 100, np.uint8), 4), np.array([4, 4, 8, 8])) \
        == pytest.approx(100.0)


def test_detector_trains_resumes_and_predicts(det, tmp_path):
    import torch
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (4, 3, 32, 32), dtype=np.uint8)
    boxes = [np.array([[4, 4, 12, 14]], np.float32)] * 4
    for im, b in zip(images, boxes):
        im[:, 4:14, 4:12] = 230
    train = {'names': [f'{i}D.png' for i in range(4)], 'images': images, 'boxes': boxes,
             'labels': [np.array([0])] * 4, 'night': np.zeros(4, bool)}
    det.train_run(train, tmp_path, seed=0, epochs=1, batch=2, lr=1e-3, width=16,
                  log=lambda *_: None)
    first = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    assert first['epoch'] == 1
    lines = []
    model = det.train_run(train, tmp_path, seed=0, epochs=2, batch=2, lr=1e-3, width=16,
                          log=lines.append)
    assert lines[0] == '  resumed from epoch 1' and len(lines) == 2
    assert torch.load(tmp_path / 'checkpoint.pt', weights_only=True)['epoch'] == 2
    # the loss curve survives the resume; the box head is alive (a dead one, all zero-size
    # boxes, scores a GIoU loss of exactly 1.0: the collapsed runs)
    assert [h['epoch'] for h in model.history] == [1, 2]
    assert all(h['bbox_regression'] < 0.95 for h in model.history)
    preds = det.predict(model, train)
    assert len(preds) == 4 and set(preds[0]) == {'boxes', 'scores', 'labels'}
    assert preds[0]['boxes'].shape[1:] == (4,) and (preds[0]['labels'] >= -1).all()


def test_history_table_shows_each_runs_first_and_last_loss(det):
    run = {'seed': 3, 'all': {'map_50': 0.2},
           'history': [{'classification': 0.9, 'bbox_regression': 1.0, 'bbox_ctrness': 0.69},
                       {'classification': 0.4, 'bbox_regression': 1.0, 'bbox_ctrness': 0.67}]}
    text = det.history_table({'thermal': [run, {'seed': 4, 'all': {'map_50': 5.0}}]})
    assert '| thermal | 3 | 0.900 -> 0.400 | 1.000 -> 1.000 | 0.690 -> 0.670 | 0.2 |' in text
    assert '| thermal | 4 |' not in text  # a run without a loss curve (older results) is left out


def test_targets_are_checked_for_the_named_candidate(det):
    def row(all_, day, night, std=0.5):
        return {p: {'map_50': {'mean': v, 'std': std}} for p, v in
                (('all', all_), ('day', day), ('night', night))}

    summary = {'visible': row(10.0, 12.0, 5.0), 'thermal': row(16.0, 17.0, 15.0),
               'fusion_default': row(12.0, 14.0, 8.0), 'laplacian': row(11.0, 12.0, 8.0),
               'quiet': row(18.5, 21.0, 14.5)}
    default = det.targets(summary)
    assert default['beats best camera by >= 2 beyond spread'] is False
    assert default['default - best camera, all (points)'] == -4.0
    quiet = det.targets(summary, 'quiet')
    assert quiet['best single camera (all)'] == 'thermal'
    assert quiet['quiet - best camera, all (points)'] == 2.5
    assert quiet['beats best camera by >= 2 beyond spread'] is True
    assert quiet['within 1 point of the better camera, day'] is True
    assert quiet['within 1 point of the better camera, night'] is True   # 0.5 behind
    assert quiet['beats fusion_default (all)'] and quiet['beats laplacian (all)']
    summary['quiet'] = row(18.5, 21.0, 13.5, std=3.0)
    quiet = det.targets(summary, 'quiet')
    assert quiet['beats best camera by >= 2 beyond spread'] is False      # within the spread
    assert quiet['within 1 point of the better camera, night'] is False   # 1.5 behind


def test_screening_inputs_run_only_when_named(det):
    assert det.MAIN_INPUTS == ['visible', 'thermal', 'fusion_default', 'fusion_no_tint',
                               'fusion_no_prior', 'laplacian', 'laplacian_tint',
                               'previous_weights']
    quiet = [n for n in det.INPUTS if n.startswith('quiet_')]
    assert quiet and all(any(o.startswith('background.') for o in det.INPUTS[n]) for n in quiet)


def test_fused_inputs_are_registered_from_the_command_line(det):
    try:
        names = det.add_fused_inputs(['ft_a=first_stage.weights=/tmp/a.pt,refiner.steps=0'])
        assert names == ['ft_a']
        assert det.INPUTS['ft_a'] == ['first_stage.weights=/tmp/a.pt', 'refiner.steps=0']
        assert 'ft_a' not in det.MAIN_INPUTS  # made only when named
        for bad in ('ft_b', 'ft_b=', '=first_stage.weights=x', 'ft_b=novalue',
                    'thermal=first_stage.weights=x'):
            with pytest.raises(ValueError):
                det.add_fused_inputs([bad])
    finally:
        det.INPUTS.pop('ft_a', None)


def test_a_work_folder_made_another_way_is_refused_not_reused(det, tmp_path):
    """Cached images or runs of other weights or another recipe never enter a new table."""
    first, second = tmp_path / 'a.pt', tmp_path / 'b.pt'
    first.write_bytes(b'weights one')
    second.write_bytes(b'weights two')
    try:
        det.add_fused_inputs([f'ft_a=first_stage.weights={first}'])
        one = det.input_fingerprint('ft_a', None)
        assert one['overrides'] == [f'first_stage.weights={first}']
        assert set(one['weights_sha256']) == {'first_stage.weights', 'refiner.weights'}
        assert det.input_fingerprint('thermal', None) == {}
        # the shipped weights count for the default input: a new models/ file makes it stale
        default = det.input_fingerprint('fusion_default', None)
        assert default['weights_sha256']['first_stage.weights'] != \
            one['weights_sha256']['first_stage.weights']
        # first_stage.tuned_for=detectors: the shipped detector-tuned file counts instead
        tuned = det.input_fingerprint('fusion_detectors', None)
        assert tuned['weights_sha256']['first_stage.weights'] == hashlib.sha256(
            (det.ROOT / 'models' / 'first_stage_detectors.pt').read_bytes()).hexdigest()
        assert tuned['weights_sha256']['first_stage.weights'] != \
            default['weights_sha256']['first_stage.weights']
        assert tuned['weights_sha256']['refiner.weights'] == \
            default['weights_sha256']['refiner.weights']
        mark = tmp_path / 'inputs' / 'ft_a' / 'test' / 'fingerprint.json'
        det.check_same(mark, one, 'fused images')
        det.check_same(mark, one, 'fused images')  # the same: accepted
        first.write_bytes(b'weights one, retrained')
        with pytest.raises(det.StaleWork, match='another way'):
            det.check_same(mark, det.input_fingerprint('ft_a', None), 'fused images')
    finally:
        det.INPUTS.pop('ft_a', None)
    # a finished run of another recipe (4 epochs) is not returned for a 16-epoch table
    args = type('Args', (), {'work': tmp_path, 'epochs': 4, 'batch': 16, 'lr': 2e-3,
                             'width': 16, 'size': 128, 'warmup': 100, 'clip': 10.0,
                             'labels': 'fusion', 'prev': None, 'split': 'test'})()
    run_dir = tmp_path / 'runs' / 'thermal_seed0'
    det.check_same(run_dir / 'recipe.json', {
        'epochs': 4, 'batch': 16, 'lr': 2e-3, 'width': 16, 'size': 128, 'warmup': 100,
        'clip': 10.0, 'labels': 'fusion', 'input': {}}, 'a detector')
    (run_dir / 'result.json').write_text(json.dumps({'input': 'thermal', 'seed': 0}))
    assert det.run_one(args, 'thermal', 0, {}, {}, [])['seed'] == 0
    args.epochs = 16
    with pytest.raises(det.StaleWork, match='recipe.json differs'):
        det.run_one(args, 'thermal', 0, {}, {}, [])
    (run_dir / 'recipe.json').unlink()  # results of an older script: refused too
    with pytest.raises(det.StaleWork, match='older detection.py'):
        det.run_one(args, 'thermal', 0, {}, {}, [])


def test_the_validation_split_holds_out_a_quarter_of_train_and_never_reads_test(det, tmp_path):
    """--split val: settings are chosen on train pairs the detector did not see, not on test."""
    names = [f'{i:05d}{"DN"[i // 3 % 2]}.png' for i in range(40)]  # runs of day and night
    shuffled = list(np.random.default_rng(1).permutation(names))
    fit, val = det.holdout(shuffled)
    assert sorted(fit + val) == list(range(40)) and not set(fit) & set(val)
    assert len(val) == 10
    # the same names are held out whatever the order they are listed in
    assert sorted(shuffled[i] for i in val) == sorted(names[i] for i in det.holdout(names)[1])
    assert {shuffled[i][-5] for i in val} == {'D', 'N'}  # day and night alike
    # a data set whose test labels and images are absent: val mode loads train alone
    (tmp_path / 'ir').mkdir()
    (tmp_path / 'labels' / 'fusion' / 'train').mkdir(parents=True)
    for i, name in enumerate(names[:8]):
        cv2.imwrite(str(tmp_path / 'ir' / name), np.full((16, 16), i * 10, np.uint8))
        (tmp_path / 'labels' / 'fusion' / 'train' / (name[:-4] + '.txt')).write_text(
            '0 0.5 0.5 0.25 0.25\n')
    (tmp_path / 'split.json').write_text(json.dumps({'train': names[:8],
                                                     'test': ['missing.png']}))
    train, scored = det.detector_sets(tmp_path, tmp_path / 'work', 'thermal', 'val')
    assert scored['names'] == [names[0], names[4]]
    assert train['names'] == [n for n in names[:8] if n not in scored['names']]
    assert scored['images'][1, 0, 0, 0] == 40 and scored['night'].tolist() == [False, True]
    assert len(train['boxes']) == 6 and len(train['images']) == 6
    assert det.scored_set(tmp_path, tmp_path / 'work', 'thermal', 'val')['names'] == \
        scored['names']
    with pytest.raises(FileNotFoundError):  # the test split is only read in test mode
        det.detector_sets(tmp_path, tmp_path / 'work', 'thermal', 'test')
    # validation runs never mix with test runs in a --work
    assert det.runs_folder(tmp_path, 'val') != det.runs_folder(tmp_path, 'test')
