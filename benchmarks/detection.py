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
Downstream detection on MSRS-128: one detector trained on each input, cameras and fusions.

Does a detector find more people and cars on the fused image than on either camera alone?

One detector architecture (torchvision's FCOS, anchor-free, with a small convolutional backbone
and torchvision's feature pyramid; no downloaded weights) is trained from scratch, with the same
budget and the same seeds, on the MSRS-128 TRAIN split for each input: the visible image, the
thermal image, our default fusion, the no-prior ablation (``prior.source: none``), the classical
Laplacian fusion and the previous shipped weights (``--prev DIR``). Each detector is scored on
the TEST split's human boxes (person, bicycle, car; the boxes drawn on the fused image, one set
for every input) with torchmetrics' ``MeanAveragePrecision``: mAP@0.5 and mAP@0.5:0.95 on all,
day and night frames, mean and spread over the seeds. The fused inputs are made first by
``sgdfuse evaluate`` (cached under ``--work``).

    python benchmarks/detection.py --data ../shared/data/msrs128 --prev PREV

``fusion_detectors`` (and ``fusion_detectors_no_prior``) are made with the first stage tuned for
detectors (``first_stage.tuned_for: detectors``); like the ``quiet_*`` inputs they run only when
named (``benchmarks/results/detection_detectors.md``). The ``quiet_*`` inputs screen the
``background.*`` option (a fused image for detectors, off by
default; ``benchmarks/results/detection_quiet_screening.md``); ``--candidate NAME`` checks the
targets for that input instead of the default fusion. ``--fused NAME=KEY=VALUE[,...]`` adds a
fused input made with other ``--set`` overrides (e.g. a first stage fine-tuned by
``benchmarks/detection_finetune.py``: ``--fused detft=first_stage.weights=W.pt``; pass it again
with ``--table-only``).

Choosing settings: ``--split val`` trains on three quarters of the TRAIN split and scores on the
quarter held out (every fourth name in sorted order, day and night alike), so that an option
can be tuned and screened without looking at the test split. Its runs live beside the test runs
(``WORK/runs_val``, sharing the fused inputs) and its table goes to
``benchmarks/results/detection_val.{json,md}`` unless ``--out`` says otherwise.

Resumable: every run checkpoints after each epoch and continues from there when started again;
finished runs (their ``result.json``) are skipped. ``--inputs`` / ``--seeds`` pick a part (e.g.
two processes over different inputs); the table is written from the finished runs. Writes
``benchmarks/results/detection.{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
import hashlib
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import time

import cv2
from harness import command, RESULTS, ROOT, write_results
from machine import describe
import numpy as np
from sgdfuse_ros.config import FIRST_STAGE_FILES

CLASSES = ('person', 'bicycle', 'car')
#: the fused image without the warm tint (``colour.warm_tint``): the visible colours only. The
#: classical Laplacian fusion and the previous weights are scored as they were published,
#: without it; ``fusion_no_tint`` and ``laplacian_tint`` show what the tint adds.
NO_TINT = 'colour.warm_tint=0'
#: the inputs, in table order; a fused input's ``sgdfuse evaluate`` overrides (None: a camera)
INPUTS = OrderedDict([
    ('visible', None),
    ('thermal', None),
    ('fusion_default', []),
    ('fusion_no_tint', [NO_TINT]),
    ('fusion_no_prior', ['prior.source=none']),
    ('laplacian', ['first_stage.type=laplacian', 'refiner.steps=0', NO_TINT]),
    ('laplacian_tint', ['first_stage.type=laplacian', 'refiner.steps=0']),
    ('previous_weights', 'PREV'),
    # the first stage fine-tuned for detectors (``first_stage.tuned_for: detectors``), with and
    # without its prior: detection_detectors.md
    ('fusion_detectors', ['first_stage.tuned_for=detectors']),
    ('fusion_detectors_no_prior', ['first_stage.tuned_for=detectors', 'prior.source=none']),
    # screening of the quiet background (``background.*``; off in the default), see
    # detection_quiet_screening.md: made before the warm tint, so without it
    ('quiet_ring20', ['background.target_radius=20', NO_TINT]),
    ('quiet_detail0', ['background.detail_gain=0', 'background.detail_sigma=8', NO_TINT]),
    ('quiet_detail05', ['background.detail_gain=0.5', 'background.detail_sigma=8', NO_TINT]),
    ('quiet_ring20_detail0', ['background.target_radius=20', 'background.detail_gain=0',
                              'background.detail_sigma=8', NO_TINT]),
    ('quiet_detail0_s16', ['background.detail_gain=0', 'background.detail_sigma=16', NO_TINT]),
    ('quiet_detail0_s32', ['background.detail_gain=0', 'background.detail_sigma=32', NO_TINT]),
    ('quiet_detail05_s16', ['background.detail_gain=0.5', 'background.detail_sigma=16',
                            NO_TINT]),
])
#: the inputs a run makes by default (the ``quiet_*`` screening inputs and the detector-tuned
#: weights only when named)
MAIN_INPUTS = [name for name in INPUTS
               if not name.startswith('quiet_') and not name.startswith('fusion_detectors')]
#: box sizes of the analysis (area in pixels of the 128x128 image)
SIZE_BINS = (('tiny <64', 0, 64), ('small 64-256', 64, 256), ('larger >=256', 256, 1e9))
#: score at which the analysis counts a box as found (IoU >= 0.5 with a detection this sure)
FOUND_SCORE = 0.3


# --- data ------------------------------------------------------------------------------------

def read_boxes(path: Path, size: int = 128) -> tuple:
    """
    Read a YOLO label file (``class cx cy w h``, normalised) as pixel boxes.

    Returns ``(boxes float32 [N, 4] xyxy, labels int64 [N])``, labels 0-based as in
    ``classes.txt``; an empty or missing file gives no boxes. Boxes are clipped to the image
    and those left with no area are dropped.
    """
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            c, cx, cy, w, h = int(parts[0]), *map(float, parts[1:])
            x0, y0 = (cx - w / 2) * size, (cy - h / 2) * size
            x1, y1 = (cx + w / 2) * size, (cy + h / 2) * size
            x0, y0, x1, y1 = (min(max(v, 0.0), float(size)) for v in (x0, y0, x1, y1))
            if x1 - x0 >= 1e-3 and y1 - y0 >= 1e-3:
                rows.append((c, x0, y0, x1, y1))
    boxes = np.array([r[1:] for r in rows], np.float32).reshape(-1, 4)
    labels = np.array([r[0] for r in rows], np.int64)
    return boxes, labels


def load_split(data: Path, split: str, image_dir: Path, labels: str = 'fusion',
               limit: int = 0) -> dict:
    """
    Load one split: images ``uint8 [N, 3, H, W]`` from ``image_dir``, boxes, day/night flags.

    ``image_dir``: a folder with the split's file names (``ir/``, ``vis/`` or a fused output);
    gray images are repeated to three channels. Boxes: ``labels/LABELS/SPLIT/NAME.txt``.
    """
    names = json.loads((Path(data) / 'split.json').read_text())[split]
    if limit:
        names = names[:limit]
    images, boxes, labels_, night = [], [], [], []
    for name in names:
        image = cv2.imread(str(Path(image_dir) / name), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f'{Path(image_dir) / name} is missing or unreadable')
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
        b, c = read_boxes(Path(data) / 'labels' / labels / split / (Path(name).stem + '.txt'),
                          image.shape[0])
        boxes.append(b)
        labels_.append(c)
        night.append(Path(name).stem.endswith('N'))
    return {'names': names, 'images': np.stack(images), 'boxes': boxes, 'labels': labels_,
            'night': np.array(night)}


#: ``--split val``: every VAL_EVERY-th train name (sorted) is held out for scoring
VAL_EVERY = 4
SPLITS = ('test', 'val')


def holdout(names) -> tuple:
    """Return the indices ``(fit, val)`` of a split's names (every VAL_EVERY-th held out)."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    val = sorted(order[::VAL_EVERY])
    held = set(val)
    return [i for i in range(len(names)) if i not in held], val


def subset(split: dict, idx) -> dict:
    """Return the images ``idx`` of a loaded split (:func:`load_split`)."""
    idx = list(idx)
    return {'names': [split['names'][i] for i in idx], 'images': split['images'][idx],
            'boxes': [split['boxes'][i] for i in idx],
            'labels': [split['labels'][i] for i in idx], 'night': split['night'][idx]}


def detector_sets(data: Path, work: Path, name: str, split: str = 'test',
                  labels: str = 'fusion') -> tuple:
    """
    Return ``(train, scored)`` for input ``name``.

    The TRAIN and TEST splits, or with ``split='val'`` three quarters of TRAIN and the quarter
    held out (:func:`holdout`).
    """
    train = load_split(data, 'train', input_folder(work, data, name, 'train'), labels)
    if split == 'val':
        fit, val = holdout(train['names'])
        return subset(train, fit), subset(train, val)
    return train, load_split(data, 'test', input_folder(work, data, name, 'test'), labels)


def scored_set(data: Path, work: Path, name: str, split: str = 'test',
               labels: str = 'fusion') -> dict:
    """Return the images input ``name``'s detectors are scored on (:func:`detector_sets`)."""
    if split == 'val':
        return detector_sets(data, work, name, split, labels)[1]
    return load_split(data, 'test', input_folder(work, data, name, 'test'), labels)


def runs_folder(work: Path, split: str = 'test') -> Path:
    """Return the folder of the runs of ``split`` under ``work``."""
    return Path(work) / ('runs' if split == 'test' else f'runs_{split}')


def input_folder(work: Path, data: Path, name: str, split: str) -> Path:
    """Return the folder with the images of input ``name`` for ``split``."""
    if name == 'visible':
        return Path(data) / 'vis'
    if name == 'thermal':
        return Path(data) / 'ir'
    return Path(work) / 'inputs' / name / split / 'fused'


class StaleWork(Exception):
    """A ``--work`` folder holds images or runs made another way than this command asks."""


def input_overrides(name: str, prev) -> list:
    """Return the ``--set`` overrides that make fused input ``name`` (None for a camera)."""
    overrides = INPUTS[name]
    if overrides == 'PREV':
        if prev is None:
            raise SystemExit('detection: error: previous_weights needs --prev DIR')
        overrides = [f'first_stage.weights={Path(prev) / "first_stage.pt"}',
                     f'refiner.weights={Path(prev) / "refiner.pt"}', NO_TINT]
    return overrides


def input_fingerprint(name: str, prev) -> dict:
    """
    Return what input ``name``'s images depend on: its overrides and its weight files' sha256.

    The weights are the shipped ``models/*.pt`` unless an override names others, so a cached
    fused input is known stale once the shipped weights change. Cameras: ``{}``.
    """
    overrides = input_overrides(name, prev)
    if overrides is None:
        return {}
    sets = dict(item.partition('=')[::2] for item in overrides)
    # an explicit weights file wins; else first_stage.tuned_for picks the shipped one
    shipped = FIRST_STAGE_FILES.get(sets.get('first_stage.tuned_for', 'images'),
                                    FIRST_STAGE_FILES['images'])
    files = {'first_stage.weights': Path(sets.get('first_stage.weights') or
                                         ROOT / 'models' / shipped),
             'refiner.weights': Path(sets.get('refiner.weights') or
                                     ROOT / 'models' / 'refiner.pt')}
    digests = {}
    for key, path in sorted(files.items()):
        try:
            digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError as err:
            raise SystemExit(f'detection: error: input {name}: cannot read {key} '
                             f'{path}: {err.strerror or err}') from None
    return {'overrides': list(overrides), 'weights_sha256': digests}


def check_same(path: Path, wanted: dict, what: str) -> None:
    """Write ``wanted`` to ``path`` the first time; raise :class:`StaleWork` if it differs."""
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except ValueError:
            found = None
        if found != wanted:
            raise StaleWork(f'{path.parent} holds {what} made another way than asked '
                            f'({path.name} differs); give another --work or remove it')
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=1, sort_keys=True) + '\n')


def make_fused_inputs(work: Path, data: Path, names, prev, splits=('test', 'train')) -> None:
    """Fuse the pairs of ``splits`` for every fused input with ``sgdfuse evaluate`` (cached)."""
    for name in names:
        overrides = input_overrides(name, prev)
        if overrides is None:
            continue
        fingerprint = input_fingerprint(name, prev)
        for split in splits:
            out = Path(work) / 'inputs' / name / split
            if (out / 'done').is_file():
                if not (out / 'fingerprint.json').is_file():
                    raise StaleWork(f'{out} was fused by an older detection.py (no '
                                    f'fingerprint.json); give another --work or remove it')
                check_same(out / 'fingerprint.json', fingerprint, 'fused images')
                continue
            (out / 'fingerprint.json').unlink(missing_ok=True)
            cmd = [sys.executable, '-m', 'sgdfuse_ros.cli', 'evaluate', '--data', str(data),
                   '--subset', split, '--out', str(out), '--no-metrics', '--contact-rows', '0',
                   '--quiet']
            for item in overrides:
                cmd += ['--set', item]
            print(f'fusing {name} {split}: {" ".join(cmd[1:])}', flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            check_same(out / 'fingerprint.json', fingerprint, 'fused images')
            (out / 'done').write_text('ok\n')


# --- the detector ----------------------------------------------------------------------------

def build_detector(num_classes: int = len(CLASSES), width: int = 16, size: int = 128):
    """
    Return torchvision's FCOS over a small backbone (strides 4, 8, 16) and a feature pyramid.

    No weights are downloaded (none exist for this backbone). Labels are 1-based (class + 1),
    channel 0 is never a target. torchvision's transform resizes the images (and the boxes) to
    ``size`` x ``size`` and maps the detections back to the input's size.
    """
    import torch
    from torch import nn
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.ops import FeaturePyramidNetwork

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Backbone(nn.Module):

        def __init__(self):
            super().__init__()
            chans = (width, 2 * width, 4 * width)
            self.stem = block(3, width // 2, 2)          # stride 2
            self.c1 = block(width // 2, chans[0], 2)     # stride 4
            self.c2 = block(chans[0], chans[1], 2)       # stride 8
            self.c3 = block(chans[1], chans[2], 2)       # stride 16
            self.fpn = FeaturePyramidNetwork(list(chans), width * 2)
            self.out_channels = width * 2

        def forward(self, x):
            f1 = self.c1(self.stem(x))
            f2 = self.c2(f1)
            f3 = self.c3(f2)
            return self.fpn(OrderedDict([('0', f1), ('1', f2), ('2', f3)]))

    backbone = Backbone()
    # FCOS puts a box on the level whose size range [4 s, 8 s] holds its largest distance
    anchors = AnchorGenerator(sizes=((4,), (8,), (16,)), aspect_ratios=((1.0,),) * 3)
    head = FCOSHead(backbone.out_channels, 1, num_classes + 1, num_convs=2)
    model = FCOS(backbone, num_classes + 1, min_size=size, max_size=size,
                 image_mean=[0.4, 0.4, 0.4], image_std=[0.25, 0.25, 0.25],
                 anchor_generator=anchors, head=head, score_thresh=0.05,
                 detections_per_img=100, topk_candidates=300)
    # torchvision's box head ends in a ReLU: with its zero bias, a first step that pushes the
    # outputs below 0 kills every box (zero-size boxes, GIoU loss stuck at 1.0, no gradient:
    # the collapsed runs). A positive bias starts each box at about one anchor size per side.
    torch.nn.init.constant_(head.regression_head.bbox_reg.bias, 1.0)
    return model


def to_targets(boxes, labels) -> list:
    """Numpy boxes/labels (0-based) -> torchvision's target dicts (labels 1-based)."""
    import torch
    return [{'boxes': torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4),
             'labels': torch.as_tensor(c, dtype=torch.int64) + 1} for b, c in zip(boxes, labels)]


def batch_images(images, flip=None):
    """``uint8 [B, 3, H, W]`` numpy -> list of float tensors in [0, 1], flipped where asked."""
    import torch
    out = []
    for i, image in enumerate(images):
        t = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)
        if flip is not None and flip[i]:
            t = t.flip(-1)
        out.append(t)
    return out


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Mirror xyxy boxes left-right in an image ``width`` wide."""
    out = boxes.copy()
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then rename over ``path``."""
    import torch
    tmp = path.with_suffix(path.suffix + '.tmp')
    with open(tmp, 'wb') as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def train_run(train: dict, run_dir: Path, seed: int, epochs: int, batch: int, lr: float,
              width: int = 16, log=print, size: int = 128, warmup: int = 100,
              clip: float = 10.0, log_every: int = 0):
    """
    Train one detector (seeded), checkpointing after every epoch in ``run_dir/checkpoint.pt``.

    A checkpoint left by a stopped run is continued from its next epoch; the data order of an
    epoch depends only on (seed, epoch), so a resumed run sees what an unbroken one would.
    AdamW, ``warmup`` steps of linear warm-up (at most a tenth of the run), then cosine decay to
    2 % of ``lr``; gradients clipped to norm ``clip``. Each epoch's mean loss terms
    (classification, box regression, centerness) are logged and kept in ``model.history``.
    """
    import torch

    torch.manual_seed(seed)
    model = build_detector(width=width, size=size)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    n = len(train['names'])
    steps_per_epoch = math.ceil(n / batch)
    total = epochs * steps_per_epoch
    warm = max(1, min(warmup, total // 10))

    def lr_at(step):
        if step < warm:
            return (step + 1) / warm
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    ckpt = run_dir / 'checkpoint.pt'
    start, history = 0, []
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state['model'])
        optim.load_state_dict(state['optim'])
        sched.load_state_dict(state['sched'])
        start = int(state['epoch'])
        history = json.loads(state.get('history', '[]'))
        log(f'  resumed from epoch {start}')
    image_width = train['images'].shape[-1]
    for epoch in range(start, epochs):
        model.train()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n)
        flips = rng.random(n) < 0.5
        t0, terms = time.perf_counter(), []
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            boxes = [flip_boxes(train['boxes'][i], image_width) if flips[i] else train['boxes'][i]
                     for i in idx]
            images = batch_images(train['images'][idx], flips[idx])
            loss_dict = model(images, to_targets(boxes, [train['labels'][i] for i in idx]))
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise RuntimeError(f'non-finite loss at epoch {epoch} step {s}')
            optim.zero_grad(set_to_none=True)
            loss.backward()
            grad = float(torch.nn.utils.clip_grad_norm_(params, clip))
            optim.step()
            sched.step()
            terms.append([float(v.detach()) for v in loss_dict.values()] + [grad])
            if log_every and (s + 1) % log_every == 0:
                m = np.mean(terms[-log_every:], axis=0)
                log(f'    step {epoch * steps_per_epoch + s + 1} cls {m[0]:.3f} box {m[1]:.3f} '
                    f'ctr {m[2]:.3f} grad {m[3]:.2f}')
        m = np.mean(terms, axis=0)
        history.append({'epoch': epoch + 1, 'loss': round(float(m[:3].sum()), 4),
                        'classification': round(float(m[0]), 4),
                        'bbox_regression': round(float(m[1]), 4),
                        'bbox_ctrness': round(float(m[2]), 4), 'grad_norm': round(float(m[3]), 3),
                        'seconds': round(time.perf_counter() - t0, 1)})
        save_atomic({'model': model.state_dict(), 'optim': optim.state_dict(),
                     'sched': sched.state_dict(), 'epoch': epoch + 1,
                     'history': json.dumps(history)}, ckpt)
        log(f'  epoch {epoch + 1}/{epochs} loss {m[:3].sum():.3f} (cls {m[0]:.3f} box {m[1]:.3f} '
            f'ctr {m[2]:.3f}, grad norm {m[3]:.2f}) ({time.perf_counter() - t0:.0f} s)')
    model.history = history
    return model


def predict(model, test: dict, batch: int = 32) -> list:
    """Run the detector on the test images: a list of {boxes, scores, labels (0-based)} numpy."""
    import torch
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(test['names']), batch):
            for det in model(batch_images(test['images'][s:s + batch])):
                out.append({'boxes': det['boxes'].numpy(), 'scores': det['scores'].numpy(),
                            'labels': det['labels'].numpy() - 1})
    return out


# --- scoring ---------------------------------------------------------------------------------

def map_scores(preds, boxes, labels, keep=None) -> dict:
    """
    Score detections with torchmetrics' ``MeanAveragePrecision`` (COCO conventions).

    ``preds``: per image {boxes, scores, labels}; ``boxes``/``labels``: the ground truth per image
    (0-based labels); ``keep``: a boolean mask of the images to score (None: all). Returns
    ``{map_50, map, map_50_<class>}`` in points (x100); a class with no test box has no entry.
    """
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    idx = [i for i in range(len(preds)) if keep is None or keep[i]]
    pr = [{'boxes': torch.as_tensor(preds[i]['boxes'], dtype=torch.float32).reshape(-1, 4),
           'scores': torch.as_tensor(preds[i]['scores'], dtype=torch.float32),
           'labels': torch.as_tensor(preds[i]['labels'], dtype=torch.int64)} for i in idx]
    gt = [{'boxes': torch.as_tensor(boxes[i], dtype=torch.float32).reshape(-1, 4),
           'labels': torch.as_tensor(labels[i], dtype=torch.int64)} for i in idx]
    coco = MeanAveragePrecision(box_format='xyxy', iou_type='bbox')
    coco.update(pr, gt)
    res = coco.compute()
    at50 = MeanAveragePrecision(box_format='xyxy', iou_type='bbox', iou_thresholds=[0.5],
                                class_metrics=True)
    at50.update(pr, gt)
    res50 = at50.compute()
    out = {'map_50': round(100 * float(res['map_50']), 2),
           'map': round(100 * float(res['map']), 2)}
    for c, ap in zip(res50['classes'].reshape(-1).tolist(), res50['map_per_class'].reshape(-1)):
        if float(ap) >= 0:
            out[f'map_50_{CLASSES[c]}'] = round(100 * float(ap), 2)
    return out


def found_mask(pred: dict, boxes: np.ndarray, labels: np.ndarray,
               score: float = FOUND_SCORE) -> np.ndarray:
    """
    Return, per ground-truth box, whether a detection of its class (``score`` or more) found it.

    Greedy one-to-one matching by descending score, IoU >= 0.5 (the analysis' "found").
    """
    import torch
    from torchvision.ops import box_iou

    found = np.zeros(len(boxes), bool)
    sel = pred['scores'] >= score
    if not len(boxes) or not sel.any():
        return found
    order = np.argsort(-pred['scores'][sel], kind='stable')
    dboxes, dlabels = pred['boxes'][sel][order], pred['labels'][sel][order]
    iou = box_iou(torch.as_tensor(dboxes).reshape(-1, 4),
                  torch.as_tensor(boxes).reshape(-1, 4)).numpy()
    for d in range(len(dboxes)):
        cand = np.where(~found & (labels == dlabels[d]) & (iou[d] >= 0.5))[0]
        if len(cand):
            found[cand[np.argmax(iou[d, cand])]] = True
    return found


def box_contrast(gray: np.ndarray, box: np.ndarray) -> float:
    """|mean inside the box - mean of a ring as wide as half the box around it| (0..255)."""
    h, w = gray.shape
    x0, y0, x1, y1 = box
    bw, bh = max(1.0, (x1 - x0) / 2), max(1.0, (y1 - y0) / 2)
    ix0, iy0, ix1, iy1 = (int(math.floor(x0)), int(math.floor(y0)), int(math.ceil(x1)),
                          int(math.ceil(y1)))
    ox0, oy0 = max(0, int(x0 - bw)), max(0, int(y0 - bh))
    ox1, oy1 = min(w, int(math.ceil(x1 + bw))), min(h, int(math.ceil(y1 + bh)))
    inner = gray[iy0:iy1, ix0:ix1].astype(np.float64)
    outer = gray[oy0:oy1, ox0:ox1].astype(np.float64)
    ring = outer.sum() - inner.sum()
    ring_n = outer.size - inner.size
    if not inner.size or ring_n <= 0:
        return 0.0
    return abs(inner.mean() - ring / ring_n)


def box_facts(data: Path, test: dict) -> list:
    """Per test image: per box its area, the thermal and the visible local contrast."""
    out = []
    for name, boxes in zip(test['names'], test['boxes']):
        ir = cv2.imread(str(Path(data) / 'ir' / name), cv2.IMREAD_GRAYSCALE)
        vis = cv2.imread(str(Path(data) / 'vis' / name), cv2.IMREAD_GRAYSCALE)
        out.append({'area': (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
                    'ir': np.array([box_contrast(ir, b) for b in boxes]),
                    'vis': np.array([box_contrast(vis, b) for b in boxes])})
    return out


def input_contrast(test: dict) -> dict:
    """
    Median local contrast (:func:`box_contrast`, gray levels) of the scored boxes in an input.

    ``test``: the scored images of the input (:func:`scored_set`). What a detector sees of a
    target: per day/night, all boxes and the tiny ones (< 64 px).
    """
    out = {}
    for period, want_night in (('day', False), ('night', True)):
        values, areas, clutter = [], [], []
        for image, boxes, night in zip(test['images'], test['boxes'], test['night']):
            if night != want_night:
                continue
            gray = cv2.cvtColor(np.ascontiguousarray(image.transpose(1, 2, 0)),
                                cv2.COLOR_RGB2GRAY)
            values += [box_contrast(gray, b) for b in boxes]
            areas += [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
            grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
            outside = np.ones(gray.shape, bool)
            for x0, y0, x1, y1 in boxes.astype(int):
                outside[max(0, y0 - 2):y1 + 3, max(0, x0 - 2):x1 + 3] = False
            clutter.append(float(grad[outside].mean()))
        values, areas = np.array(values), np.array(areas)
        out[period] = round(float(np.median(values)), 1)
        out[f'{period} tiny'] = round(float(np.median(values[areas < 64])), 1)
        out[f'{period} background gradient'] = round(float(np.mean(clutter)), 1)
    return out


def box_groups(test: dict, facts: list) -> dict:
    """Per labelled test box (all images, in order): {group: boolean mask} for the analysis."""
    area = np.concatenate([f['area'] for f in facts])
    ir = np.concatenate([f['ir'] for f in facts])
    vis = np.concatenate([f['vis'] for f in facts])
    cls = np.concatenate(test['labels'])
    night = np.concatenate([np.full(len(b), n) for b, n in zip(test['boxes'], test['night'])])
    out = {}
    for period, pmask in (('day', ~night), ('night', night)):
        groups = {f'size {label}': (area >= lo) & (area < hi) for label, lo, hi in SIZE_BINS}
        groups.update({f'class {name}': cls == k for k, name in enumerate(CLASSES)})
        groups.update({'thermal contrast <20': ir < 20, 'thermal contrast >=20': ir >= 20,
                       'visible contrast <20': vis < 20, 'visible contrast >=20': vis >= 20})
        for key, mask in groups.items():
            out[f'{period}: {key}'] = mask & pmask
    return out


def paired_found(args, results: dict, first: str = 'thermal',
                 second: str = 'fusion_default') -> dict:
    """
    Which labelled boxes one input's detector finds and the other's misses, seed by seed.

    Reloads both inputs' final checkpoints for every seed that both trained without collapse,
    runs them on their test images and counts per box group (:func:`box_groups`) the boxes
    found by both, by ``first`` only, by ``second`` only and by neither (mean over the seeds).
    Empty when no seed has both.
    """
    import torch
    seeds = sorted({r['seed'] for r in results.get(first, []) if not collapsed(r)}
                   & {r['seed'] for r in results.get(second, []) if not collapsed(r)})
    if not seeds:
        return {}
    tests = {name: scored_set(args.data, args.work, name, args.split, args.labels)
             for name in (first, second)}
    groups = box_groups(tests[first], box_facts(args.data, tests[first]))
    counts = []
    for seed in seeds:
        found = {}
        for name in (first, second):
            state = torch.load(runs_folder(args.work, args.split) / f'{name}_seed{seed}' /
                               'checkpoint.pt',
                               weights_only=True)
            model = build_detector(width=args.width, size=args.size)
            model.load_state_dict(state['model'])
            preds = predict(model, tests[name])
            found[name] = np.concatenate([found_mask(p, b, c) for p, b, c in zip(
                preds, tests[name]['boxes'], tests[name]['labels'])])
        a, b = found[first], found[second]
        counts.append({key: [int(m.sum()), int((a & b & m).sum()), int((a & ~b & m).sum()),
                             int((~a & b & m).sum()), int((~a & ~b & m).sum())]
                       for key, m in groups.items()})
    return {'first': first, 'second': second, 'seeds': seeds,
            'groups': {key: [counts[0][key][0]] + [round(float(np.mean(
                [c[key][i] for c in counts])), 1) for i in range(1, 5)] for key in counts[0]}}


def paired_table(paired: dict) -> str:
    """Markdown of :func:`paired_found`."""
    if not paired:
        return ''
    a, b = paired['first'], paired['second']
    lines = [f'Labelled boxes (scored split) found by the {a} and the {b} detector of the same '
             f'seed (seeds {" ".join(map(str, paired["seeds"]))}, mean box counts; found as '
             f'above)\n',
             f'| boxes | n | both | {a} only | {b} only | neither |', '|---|---|---|---|---|---|']
    for key, (n, both, only_a, only_b, neither) in paired['groups'].items():
        lines.append(f'| {key} | {n} | {both:.1f} | {only_a:.1f} | {only_b:.1f} | '
                     f'{neither:.1f} |')
    return '\n'.join(lines) + '\n'


def found_breakdown(preds, test: dict, facts: list) -> dict:
    """Share of labelled boxes found (:func:`found_mask`) by day/night x size, class, contrast."""
    found = np.concatenate([found_mask(p, b, c) for p, b, c in
                            zip(preds, test['boxes'], test['labels'])] or [np.zeros(0, bool)])
    return {key: [round(float(found[m].mean()), 3) if m.any() else None, int(m.sum())]
            for key, m in box_groups(test, facts).items()}


# --- the benchmark ---------------------------------------------------------------------------

def summarize(values) -> dict:
    """Mean, spread (sample standard deviation; 0 for one value), min, max over the seeds."""
    v = np.asarray(values, float)
    return {'mean': round(float(v.mean()), 2),
            'std': round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 2),
            'min': round(float(v.min()), 2), 'max': round(float(v.max()), 2), 'n': len(v)}


def run_one(args, name: str, seed: int, train: dict, test: dict, facts: list) -> dict:
    """Train (or resume) and score one (input, seed) run; its ``result.json``."""
    run_dir = runs_folder(args.work, args.split) / f'{name}_seed{seed}'
    result_path = run_dir / 'result.json'
    recipe = {'epochs': args.epochs, 'batch': args.batch, 'lr': args.lr, 'width': args.width,
              'size': args.size, 'warmup': args.warmup, 'clip': args.clip,
              'labels': args.labels, 'input': input_fingerprint(name, args.prev)}
    if args.split != 'test':
        recipe['split'] = args.split
    if result_path.is_file() and not (run_dir / 'recipe.json').is_file():
        raise StaleWork(f'{run_dir} was trained by an older detection.py (no recipe.json); '
                        f'give another --work or remove it')
    check_same(run_dir / 'recipe.json', recipe, 'a detector')
    if result_path.is_file():
        return json.loads(result_path.read_text())
    print(f'training {name} seed {seed}', flush=True)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    model = train_run(train, run_dir, seed, args.epochs, args.batch, args.lr, args.width,
                      size=args.size, warmup=args.warmup, clip=args.clip)
    preds = predict(model, test)
    result = {'input': name, 'seed': seed, 'epochs': args.epochs, 'width': args.width,
              'size': args.size, 'lr': args.lr, 'warmup': args.warmup, 'clip': args.clip,
              'history': model.history,
              'all': map_scores(preds, test['boxes'], test['labels']),
              'day': map_scores(preds, test['boxes'], test['labels'], ~test['night']),
              'night': map_scores(preds, test['boxes'], test['labels'], test['night']),
              'found': found_breakdown(preds, test, facts),
              'seconds_after_resume': round(time.perf_counter() - t0, 1),
              'load_1min_start_end': [round(load0, 2), round(os.getloadavg()[0], 2)]}
    result_path.write_text(json.dumps(result, indent=1) + '\n')
    print(f'  {name} seed {seed}: mAP@0.5 all {result["all"]["map_50"]} day '
          f'{result["day"]["map_50"]} night {result["night"]["map_50"]}', flush=True)
    return result


def collect(work: Path, names, seeds, split: str = 'test') -> dict:
    """Read the finished runs' results: {input: [result, ...]}, only inputs with any."""
    out = {}
    for name in names:
        found = [runs_folder(work, split) / f'{name}_seed{s}' / 'result.json' for s in seeds]
        done = [json.loads(p.read_text()) for p in found if p.is_file()]
        if done:
            out[name] = done
    return out


#: a run whose detector scores under this mAP@0.5 on all test frames learned nothing (its
#: training stalled: no detection above the score floor); counted apart, not averaged
COLLAPSED_BELOW = 1.0


def collapsed(run: dict) -> bool:
    """Whether a run's detector learned nothing (:data:`COLLAPSED_BELOW`)."""
    return run['all']['map_50'] < COLLAPSED_BELOW


def table(results: dict) -> tuple:
    """Return (summary dict, markdown table) of mAP@0.5 and mAP@0.5:0.95 per input and period."""
    summary = {}
    lines = ['| input | seeds (collapsed) | mAP@0.5 all | mAP@0.5 day | mAP@0.5 night | '
             'mAP@0.5:0.95 all | mAP@0.5:0.95 day | mAP@0.5:0.95 night |',
             '|---|---|---|---|---|---|---|---|']
    for name, all_runs in results.items():
        runs = [r for r in all_runs if not collapsed(r)] or all_runs
        failed = [r['seed'] for r in all_runs if collapsed(r)]
        entry = {'seeds_averaged': [r['seed'] for r in runs], 'seeds_collapsed': failed}
        for period in ('all', 'day', 'night'):
            entry[period] = {key: summarize([r[period][key] for r in runs])
                             for key in runs[0][period] if all(key in r[period] for r in runs)}
        summary[name] = entry
        cells = [f"{entry[p][k]['mean']:.1f} ± {entry[p][k]['std']:.1f}"
                 for k in ('map_50', 'map') for p in ('all', 'day', 'night')]
        seeds = ' '.join(str(r['seed']) for r in runs)
        if failed:
            seeds += f' ({" ".join(map(str, failed))})'
        lines.append(f'| {name} | {seeds} | ' + ' | '.join(cells) + ' |')
    return summary, '\n'.join(lines)


def found_table(results: dict, shares: dict) -> str:
    """Markdown: share of labelled boxes found (mean over seeds) per group and input."""
    names = list(shares)
    first = next(iter(results.values()))[0]['found']
    lines = [f'Share of the labelled boxes (scored split) found (IoU >= 0.5 with a detection '
             f'of score >= {FOUND_SCORE}, right class), mean over seeds\n',
             '| boxes | n | ' + ' | '.join(names) + ' |', '|---|---|' + '---|' * len(names)]
    for key, (_, count) in first.items():
        cells = [f'{shares[n][key]:.2f}' if key in shares[n] else '-' for n in names]
        lines.append(f'| {key} | {count} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def history_table(results: dict) -> str:
    """Markdown: each run's loss terms in its first and last epoch (a collapse shows here)."""
    lines = ['Training loss per run, first -> last epoch (classification / box GIoU / '
             'centerness; a dead box head keeps the GIoU loss at 1.0)\n',
             '| input | seed | classification | box | centerness | mAP@0.5 all |',
             '|---|---|---|---|---|---|']
    for name, runs in results.items():
        for r in runs:
            h = r.get('history') or []
            if not h:
                continue
            cells = [f'{h[0][k]:.3f} -> {h[-1][k]:.3f}'
                     for k in ('classification', 'bbox_regression', 'bbox_ctrness')]
            lines.append(f"| {name} | {r['seed']} | " + ' | '.join(cells)
                         + f" | {r['all']['map_50']:.1f} |")
    return '\n'.join(lines) + '\n'


def contrast_table(contrast: dict) -> str:
    """Markdown: median local contrast of the labelled boxes per input (gray levels)."""
    keys = list(next(iter(contrast.values())))
    lines = ['Median local contrast of the labelled boxes (scored split) in each input (|box '
             'mean - surrounding ring mean|, gray levels 0-255; tiny: < 64 px) and the mean Sobel '
             'gradient away from the boxes (background texture a detector must reject)\n',
             '| input | ' + ' | '.join(keys) + ' |', '|---|' + '---|' * len(keys)]
    for name, row in contrast.items():
        lines.append(f'| {name} | ' + ' | '.join(f'{row[k]:.1f}' for k in keys) + ' |')
    return '\n'.join(lines) + '\n'


def targets(summary: dict, ours_name: str = 'fusion_default') -> dict:
    """Check the issue's targets on mAP@0.5 for ``ours_name`` (empty while an input is missing)."""
    need = ('visible', 'thermal', ours_name)
    if not all(k in summary for k in need):
        return {}

    def m(name, period):
        return summary[name][period]['map_50']

    cams = ('visible', 'thermal')
    best = max(cams, key=lambda c: m(c, 'all')['mean'])
    ours = m(ours_name, 'all')
    margin = ours['mean'] - m(best, 'all')['mean']
    spread = max(ours['std'], m(best, 'all')['std'])
    label = 'default' if ours_name == 'fusion_default' else ours_name
    out = {'best single camera (all)': best,
           f'{label} - best camera, all (points)': round(margin, 2),
           'largest seed spread of the two (std)': spread,
           'beats best camera by >= 2 beyond spread': bool(margin >= 2 and margin > spread)}
    for period in ('day', 'night'):
        better = max(m(c, period)['mean'] for c in cams)
        gap = m(ours_name, period)['mean'] - better
        out[f'{label} - better camera, {period}'] = round(gap, 2)
        out[f'within 1 point of the better camera, {period}'] = bool(gap >= -1)
    for other in ('laplacian', 'fusion_no_prior', 'fusion_default', f'{ours_name}_no_prior'):
        if other in summary and other != ours_name:
            out[f'beats {other} (all)'] = bool(ours['mean'] > m(other, 'all')['mean'])
    return out


def add_fused_inputs(items) -> list:
    """
    Register ``--fused NAME=KEY=VALUE[,KEY=VALUE...]`` inputs in :data:`INPUTS`; their names.

    A fused input made by ``sgdfuse evaluate`` with the given ``--set`` overrides (e.g. a first
    stage fine-tuned elsewhere: ``detft=first_stage.weights=/tmp/w.pt``). Raises ``ValueError``
    for a malformed item or a name that is taken by a built-in input.
    """
    names = []
    for item in items:
        name, _, sets = item.partition('=')
        overrides = [s for s in sets.split(',') if s]
        if not name or not overrides or not all('=' in s for s in overrides):
            raise ValueError(f'--fused {item!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]')
        if name in INPUTS and INPUTS[name] != overrides:
            raise ValueError(f'--fused {item!r}: the input {name!r} exists already')
        INPUTS[name] = overrides
        names.append(name)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='the msrs128 folder')
    parser.add_argument('--prev', type=Path, default=None,
                        help='folder with the previous first_stage.pt and refiner.pt')
    parser.add_argument('--work', type=Path, default=ROOT / 'outputs' / 'detection',
                        help='fused inputs, checkpoints and per-run results (resumable)')
    parser.add_argument('--inputs', nargs='+', default=MAIN_INPUTS,
                        help=f'inputs to train on (default: the main ones; known: '
                             f'{" ".join(INPUTS)} and those of --fused)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--epochs', type=int, default=16)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--width', type=int, default=16, help='backbone width (channels)')
    parser.add_argument('--size', type=int, default=128,
                        help='side the detector resizes the images to (boxes follow)')
    parser.add_argument('--warmup', type=int, default=100, help='linear warm-up steps')
    parser.add_argument('--clip', type=float, default=10.0, help='gradient norm clip')
    parser.add_argument('--labels', default='fusion', choices=('fusion', 'infrared', 'visible'),
                        help="which of the data set's box sets to train and score on")
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--table-only', action='store_true',
                        help='only write the table from the finished runs')
    parser.add_argument('--split', default='test', choices=SPLITS,
                        help='score on the test split, or (val) train on three quarters of the '
                             'train split and score on the quarter held out, for choosing '
                             'settings')
    parser.add_argument('--out', type=Path, default=None,
                        help='results file stem (default benchmarks/results/detection, '
                             'detection_val with --split val)')
    parser.add_argument('--candidate', default='fusion_default',
                        help='the fused input the targets are checked for')
    parser.add_argument('--fused', action='append', default=[],
                        metavar='NAME=KEY=VALUE[,KEY=VALUE...]',
                        help='one more fused input, made by sgdfuse evaluate with these --set '
                             'overrides (e.g. detft=first_stage.weights=/tmp/w.pt); repeatable')
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / ('detection' if args.split == 'test' else f'detection_{args.split}')
    try:
        add_fused_inputs(args.fused)
    except ValueError as err:
        print(f'detection: error: {err}', file=sys.stderr)
        return 2
    unknown = [n for n in list(args.inputs) + [args.candidate] if n not in INPUTS]
    if unknown:
        print(f'detection: error: unknown input {unknown[0]!r} (known: {" ".join(INPUTS)})',
              file=sys.stderr)
        return 2
    if not (args.data / 'split.json').is_file():
        print(f'detection: error: {args.data} has no split.json', file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(max(1, args.threads))
    args.work = args.work.resolve()
    if not args.table_only:
        try:
            make_fused_inputs(args.work, args.data, args.inputs, args.prev,
                              ('test', 'train') if args.split == 'test' else ('train',))
            sets = {name: detector_sets(args.data, args.work, name, args.split, args.labels)
                    for name in args.inputs}
            facts = box_facts(args.data, sets[args.inputs[0]][1])
            for seed in args.seeds:  # seed-major: a stopped benchmark has every input's first
                for name in args.inputs:
                    run_one(args, name, seed, *sets[name], facts)
        except StaleWork as err:
            print(f'detection: error: {err}', file=sys.stderr)
            return 2
    results = collect(args.work, list(INPUTS), args.seeds, args.split)
    if not results:
        print('detection: no finished runs yet', file=sys.stderr)
        return 1
    for runs in results.values():  # a table states one recipe: every run must follow it
        for r in runs:
            differ = [k for k in ('epochs', 'width', 'size', 'lr', 'warmup', 'clip')
                      if r.get(k) != getattr(args, k)]
            if differ:
                print(f'detection: error: run {r["input"]} seed {r["seed"]} in {args.work} has '
                      f'{differ[0]} {r.get(differ[0])}, not {getattr(args, differ[0])} as '
                      f'asked', file=sys.stderr)
                return 2
    summary, markdown = table(results)
    learned = {name: [r for r in runs if not collapsed(r)] or runs
               for name, runs in results.items()}
    goals = targets(summary, args.candidate)
    report = {'command': command(), 'machine': describe(('torch', 'torchvision', 'torchmetrics')),
              'threads': args.threads, 'labels': args.labels, 'classes': list(CLASSES),
              'epochs': args.epochs, 'batch': args.batch, 'lr': args.lr, 'width': args.width,
              'size': args.size, 'warmup': args.warmup, 'clip': args.clip,
              'seeds': args.seeds, 'split': args.split,
              'detector': 'torchvision FCOS, small backbone (strides 4/8/16) + FPN, from scratch',
              'inputs': summary, 'targets': goals,
              'box_contrast_median': {name: input_contrast(scored_set(
                  args.data, args.work, name, args.split, args.labels)) for name in results},
              'found_share_mean': {
                  name: {k: summarize([r['found'][k][0] for r in runs
                                       if r['found'][k][0] is not None])['mean']
                         for k in runs[0]['found'] if runs[0]['found'][k][0] is not None}
                  for name, runs in learned.items()},
              'paired_found': paired_found(args, results),
              'runs': {name: [{k: r[k] for k in ('seed', 'all', 'day', 'night', 'history',
                                                 'seconds_after_resume') if k in r}
                              for r in runs]
                       for name, runs in results.items()}}
    scored = ('test' if args.split == 'test' else
              'validation: the quarter of train held out, detectors trained on the rest')
    md = (f'# Detection on MSRS-128 {scored} ({args.labels} boxes)\n\n`{command()}`\n\n'
          f'Detector: {report["detector"]}; the same recipe for every input: {args.epochs} '
          f'epochs, batch {args.batch}, AdamW {args.lr:g} ({args.warmup} warm-up steps at most, '
          f'cosine decay), gradient norm clipped at {args.clip:g}, images resized to '
          f'{args.size}x{args.size}, box-head bias 1.0, horizontal flips\n\n'
          f'mean ± std over the seeds named (points, x100); seeds in brackets: runs whose '
          f'training collapsed (mAP@0.5 < {COLLAPSED_BELOW} on all frames: the detector '
          f'learned nothing), counted apart\n\n{markdown}\n\n'
          + '\n'.join(f'- {k}: {v}' for k, v in goals.items()) + '\n\n'
          + found_table(results, report['found_share_mean']) + '\n'
          + paired_table(report['paired_found']) + '\n'
          + history_table(results) + '\n'
          + contrast_table(report['box_contrast_median']))
    write_results(args.out, report, md, show=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
