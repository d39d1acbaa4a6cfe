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
Fine-tune the first stage with a detector's loss on its fused image (TarDAL / SeAFusion style).

An experiment of issue #23 (does the fused image help a detector?), not a shipped recipe. A COPY
of the first stage (``--init``, default ``models/first_stage.pt``) is fine-tuned on the MSRS-128
TRAIN split only (the test split is never read) with

    loss = the shipped fusion loss (the loss weights stored in ``--init``, on the first stage's
           output, as ``sgdfuse train first-stage`` computes it)
         + lambda * the loss of the detector of ``benchmarks/detection.py`` (``build_detector``:
           torchvision FCOS, small backbone) on the fused image the detector would be given.

The fused image is made in the graph as ``sgdfuse evaluate`` makes it for ``detection.py``:
thermal fallback prior (``prior.source: thermal``, computed once per pair), first stage, the
shipped refiner (frozen, K = ``--refiner-steps`` DDIM steps from the seeded noise of
``refiner.seed`` 0; gradients flow through it into the first stage), the fused luminance merged
with the visible chroma faded where the visible image is dark or lifted
(``attenuate_chroma``), YCrCb -> RGB. Not reproduced: the 8-bit rounding of the saved PNG (the
pretraining images are rounded, the joint phase's are not).

Two phases, both seeded and resumable (``--work``; rerunning the same command continues):

1. the detector is trained from scratch for ``--pre-epochs`` epochs on the frozen initial
   first stage's fused images (``detection.train_run``: the benchmark's own recipe);
2. ``--steps`` joint steps: every batch updates the first stage (fusion + lambda * detection
   loss, AdamW ``--lr`` with cosine decay, gradient norm 1.0) and the detector (its own loss,
   AdamW ``--det-lr``, gradient norm 10); the refiner stays frozen.

The fine-tuned first stage (the last step's weights: no model selection) is written to
``--out`` in the shipped file format; score it with ``sgdfuse evaluate --set
first_stage.weights=OUT`` (``detection.py``'s ``detft_*`` inputs, ``quality_msrs.py`` /
``quality_roadscene.py --set first_stage.weights=OUT``).

    nice -n 10 python benchmarks/detection_finetune.py --data /work/shared/data/msrs128
        --lam 4 --out /tmp/det10/first_stage_det.pt --work /tmp/det10/ft_lam4   # one line
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys
import time

from detection import flip_boxes, read_boxes, to_targets, train_run
from harness import command, ROOT
import numpy as np
from sgdfuse_ros.eval.datasets import dataset_pairs
from sgdfuse_ros.fusion.network import FirstStageNet, KIND as FIRST_KIND
from sgdfuse_ros.fusion.refiner import KIND as REFINER_KIND, RefinerNet
from sgdfuse_ros.fusion.weights import load_weights, save_atomically, save_weights
from sgdfuse_ros.pipeline.images import DARK_CHROMA_HIGH, DARK_CHROMA_LOW, LIFT_EPS
from sgdfuse_ros.training.data import CropSampler, load_samples, split_train_names, VAL_EVERY
from sgdfuse_ros.training.losses import DEFAULT_WEIGHTS, fusion_losses
import torch

CKPT_NAME = 'joint_checkpoint.pt'


# --- data: the TRAIN split only ----------------------------------------------------------------

def load_train(data: Path, labels: str = 'fusion', limit: int = 0) -> dict:
    """
    Read the MSRS TRAIN pairs, their thermal fallback priors and their boxes (never the test).

    Returns ``{'names', 'planes' float32 [N, 4, H, W] (thermal, visible Y, targets,
    boundaries), 'chroma' float32 [N, 2, H, W] (Cr, Cb in [0, 1]), 'boxes', 'labels'}``; the
    boxes are ``labels/LABELS/train/NAME.txt`` (the ones ``detection.py`` trains on).
    """
    names = [p.name for p in dataset_pairs(data, 'train')]
    if limit:
        names = names[:limit]
    samples = load_samples(data, names)
    planes = np.stack([np.stack([s.thermal, s.visible_y, s.targets, s.boundaries])
                       for s in samples]).astype(np.float32)
    chroma = np.stack([s.chroma.transpose(2, 0, 1) for s in samples]).astype(np.float32) / 255.0
    boxes, classes = [], []
    for s in samples:
        b, c = read_boxes(Path(data) / 'labels' / labels / 'train' / (Path(s.name).stem + '.txt'),
                          s.thermal.shape[0])
        boxes.append(b)
        classes.append(c)
    return {'names': names, 'planes': planes, 'chroma': chroma, 'boxes': boxes,
            'labels': classes}


# --- the fused image the detector is given, in the graph ---------------------------------------

def colour_merge(y: torch.Tensor, vis_y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """
    Fused Y (N, 1, H, W) + visible chroma (N, 2, H, W), both in [0, 1] -> RGB (N, 3, H, W).

    ``attenuate_chroma`` (fade to neutral where the visible Y is dark or the fused Y lifted
    above it) and OpenCV's YCrCb -> RGB, differentiable; no 8-bit rounding.
    """
    weight = (vis_y - DARK_CHROMA_LOW) / (DARK_CHROMA_HIGH - DARK_CHROMA_LOW)
    weight = torch.minimum(weight, (vis_y + LIFT_EPS) / (y + LIFT_EPS)).clamp(0.0, 1.0)
    cr = (chroma[:, 0:1] - 0.5) * weight
    cb = (chroma[:, 1:2] - 0.5) * weight
    rgb = torch.cat([y + 1.403 * cr, y - 0.714 * cr - 0.344 * cb, y + 1.773 * cb], dim=1)
    return rgb.clamp(0.0, 1.0)


def refiner_noise(shape, seed: int = 0) -> torch.Tensor:
    """Draw the refiner's noise as ``DiffusionRefiner.noise`` does for a frame of ``shape``."""
    gen = torch.Generator(device='cpu').manual_seed(int(seed))
    return torch.randn((1, 1) + tuple(shape), generator=gen)


def fused_images(first_stage, refiner, planes: torch.Tensor, chroma: torch.Tensor,
                 steps: int = 2, noise: torch.Tensor = None):
    """Return ``(first-stage Y, RGB the detector sees)`` for a batch of planes (N, 4, H, W)."""
    ir, vis, targets, boundaries = planes[:, 0:1], planes[:, 1:2], planes[:, 2:3], planes[:, 3:4]
    first = first_stage(ir, vis, targets, boundaries)
    y = first
    if refiner is not None and steps > 0:
        if noise is None:
            noise = refiner_noise(ir.shape[-2:])
        y = refiner(ir, vis, targets, boundaries, first, steps, noise.expand_as(ir))
    return first, colour_merge(y, vis, chroma)


def joint_loss(first_stage, refiner, detector, planes, chroma, boxes, labels, lam: float,
               loss_weights: dict = None, steps: int = 2, noise=None,
               mix_planes: torch.Tensor = None) -> dict:
    """
    Fusion loss on the first stage + ``lam`` x detection loss on the fused RGB image.

    ``mix_planes`` (N, 4, h, w): crops of another set's train pairs (``--mix``) whose fusion
    loss is averaged with the MSRS batch's (``fusion`` = the mean of the two); they get no
    detection term. Returns the weighted fusion terms, the detector's terms (``det_*``,
    unweighted), ``fusion``, ``fusion_mix`` (with ``mix_planes``), ``detection`` and ``total``.
    """
    first, rgb = fused_images(first_stage, refiner, planes, chroma, steps, noise)
    ir, vis, targets = planes[:, 0:1], planes[:, 1:2], planes[:, 2:3]
    terms = fusion_losses(first, ir, vis, targets, loss_weights)
    fusion = terms.pop('total')
    if mix_planes is not None:
        m_ir, m_vis, m_targets, m_bounds = (mix_planes[:, k:k + 1] for k in range(4))
        mixed = fusion_losses(first_stage(m_ir, m_vis, m_targets, m_bounds), m_ir, m_vis,
                              m_targets, loss_weights)['total']
        terms['fusion_mix'] = mixed
        fusion = 0.5 * (fusion + mixed)
    det_terms = detector(list(rgb), to_targets(boxes, labels))
    detection = sum(det_terms.values())
    out = dict(terms)
    out.update({f'det_{k}': v for k, v in det_terms.items()})
    out.update({'fusion': fusion, 'detection': detection,
                'total': fusion + float(lam) * detection})
    return out


def batch_at(train: dict, order, flips, idx) -> tuple:
    """Return the planes, chroma (flipped where asked) and boxes of the items ``order[idx]``."""
    items = order[idx]
    planes = torch.from_numpy(train['planes'][items])
    chroma = torch.from_numpy(train['chroma'][items])
    flip = torch.from_numpy(flips[items])
    planes = torch.where(flip.view(-1, 1, 1, 1), planes.flip(-1), planes)
    chroma = torch.where(flip.view(-1, 1, 1, 1), chroma.flip(-1), chroma)
    width = planes.shape[-1]
    boxes = [flip_boxes(train['boxes'][i], width) if flips[i] else train['boxes'][i]
             for i in items]
    return planes, chroma, boxes, [train['labels'][i] for i in items]


# --- the two phases -----------------------------------------------------------------------------

def to_uint8_images(rgb: torch.Tensor) -> np.ndarray:
    """RGB in [0, 1] -> uint8 (N, 3, H, W), rounded as the pipeline writes its PNGs."""
    return (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()


def pretrain_detector(args, train, first_stage, refiner, noise):
    """Phase 1: the benchmark's detector recipe on the frozen initial fusion (resumable)."""
    images = []
    with torch.no_grad():
        for s in range(0, len(train['names']), 64):
            planes = torch.from_numpy(train['planes'][s:s + 64])
            chroma = torch.from_numpy(train['chroma'][s:s + 64])
            images.append(to_uint8_images(fused_images(first_stage, refiner, planes, chroma,
                                                       args.refiner_steps, noise)[1]))
    data = {'names': train['names'], 'images': np.concatenate(images),
            'boxes': train['boxes'], 'labels': train['labels']}
    run_dir = args.work / 'pretrain'
    run_dir.mkdir(parents=True, exist_ok=True)
    return train_run(data, run_dir, args.seed, args.pre_epochs, args.batch, args.det_pre_lr,
                     args.width, size=data['images'].shape[-1])


def cosine(step: int, total: int) -> float:
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def mix_sampler(args):
    """
    Return a sampler of ``args.mix``'s train crops for the fusion loss (None without ``--mix``).

    Validation pairs are held out and the test split is never read; crops are drawn as
    ``sgdfuse train`` draws them (128 px crops, flips, 15 % emptied priors).
    """
    if args.mix is None:
        return None
    names = split_train_names(args.mix, VAL_EVERY['roadscene'])[0]
    return CropSampler(load_samples(args.mix, names), args.mix_crop, args.seed)


def joint(args, train, first_stage, refiner, detector, noise, loss_weights,
          sampler=None) -> list:
    """Phase 2: ``args.steps`` joint steps, checkpointed (``CKPT_NAME``) and resumable."""
    fs_params = [p for p in first_stage.parameters() if p.requires_grad]
    det_params = [p for p in detector.parameters() if p.requires_grad]
    opt_fs = torch.optim.AdamW(fs_params, lr=args.lr, weight_decay=1e-4)
    opt_det = torch.optim.AdamW(det_params, lr=args.det_lr, weight_decay=1e-4)
    ckpt_path = args.work / CKPT_NAME
    step, history = 0, []
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location='cpu', weights_only=True)
        first_stage.load_state_dict(state['first_stage'])
        detector.load_state_dict(state['detector'])
        opt_fs.load_state_dict(state['opt_fs'])
        opt_det.load_state_dict(state['opt_det'])
        step, history = int(state['step']), json.loads(state['history'])
        if sampler is not None:
            sampler.set_state(json.loads(state['sampler']))
        print(f'joint: resumed at step {step} of {args.steps}', flush=True)

    def save():
        save_atomically({'first_stage': first_stage.state_dict(),
                         'detector': detector.state_dict(), 'opt_fs': opt_fs.state_dict(),
                         'opt_det': opt_det.state_dict(), 'step': step,
                         'history': json.dumps(history),
                         'sampler': json.dumps(sampler.state() if sampler else None)},
                        ckpt_path)

    n = len(train['names'])
    per_epoch = n // args.batch
    first_stage.train()
    detector.train()
    t0, last_save, window = time.perf_counter(), time.perf_counter(), []
    while step < args.steps:
        epoch, k = divmod(step, per_epoch)
        rng = np.random.default_rng([args.seed, 1000 + epoch])  # the order: (seed, epoch) only
        order, flips = rng.permutation(n), rng.random(n) < 0.5
        planes, chroma, boxes, labels = batch_at(
            train, order, flips, slice(k * args.batch, (k + 1) * args.batch))
        for group in opt_fs.param_groups:
            group['lr'] = args.lr * cosine(step, args.steps)
        for group in opt_det.param_groups:
            group['lr'] = args.det_lr * cosine(step, args.steps)
        mix = torch.from_numpy(sampler.batch(args.mix_batch)) if sampler else None
        terms = joint_loss(first_stage, refiner, detector, planes, chroma, boxes, labels,
                           args.lam, loss_weights, args.refiner_steps, noise, mix)
        if not torch.isfinite(terms['total']):
            raise RuntimeError(f'non-finite loss at joint step {step}')
        opt_fs.zero_grad(set_to_none=True)
        opt_det.zero_grad(set_to_none=True)
        terms['total'].backward()
        # the detector learns from its own loss only: lambda scales what reaches the fusion net
        if args.lam > 0:
            for p in det_params:
                if p.grad is not None:
                    p.grad.div_(args.lam)
        torch.nn.utils.clip_grad_norm_(fs_params, 1.0)
        torch.nn.utils.clip_grad_norm_(det_params, 10.0)
        opt_fs.step()
        opt_det.step()
        step += 1
        window.append({k: float(v.detach()) for k, v in terms.items()})
        if step % 20 == 0 or step == args.steps:
            mean = {k: round(float(np.mean([w[k] for w in window])), 5) for k in window[0]}
            history.append({'step': step, **mean,
                            'seconds': round(time.perf_counter() - t0, 1)})
            window = []
            print(f'joint step {step}/{args.steps}: fusion {mean["fusion"]:.4f} detection '
                  f'{mean["detection"]:.4f} ({time.perf_counter() - t0:.0f} s)', flush=True)
        if time.perf_counter() - last_save > 120 or step == args.steps:
            save()
            last_save = time.perf_counter()
    return history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='the msrs128 folder')
    parser.add_argument('--init', type=Path, default=ROOT / 'models' / 'first_stage.pt')
    parser.add_argument('--refiner', type=Path, default=ROOT / 'models' / 'refiner.pt')
    parser.add_argument('--refiner-steps', type=int, default=2,
                        help='the pipeline refiner.steps the detector sees (0: first stage)')
    parser.add_argument('--out', type=Path, required=True, help='the fine-tuned first_stage.pt')
    parser.add_argument('--work', type=Path, required=True, help='checkpoints (resumable)')
    parser.add_argument('--lam', type=float, default=1.0, help='weight of the detection loss')
    parser.add_argument('--steps', type=int, default=600, help='joint steps')
    parser.add_argument('--pre-epochs', type=int, default=4,
                        help='detector epochs on the initial fusion before the joint phase')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=5e-4, help='first stage (joint phase)')
    parser.add_argument('--det-pre-lr', type=float, default=2e-3, help='detector, phase 1')
    parser.add_argument('--det-lr', type=float, default=5e-4, help='detector, joint phase')
    parser.add_argument('--width', type=int, default=16, help='detector backbone width')
    parser.add_argument('--labels', default='fusion', choices=('fusion', 'infrared', 'visible'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--limit', type=int, default=0, help='first N train pairs (a smoke run)')
    parser.add_argument('--mix', type=Path, default=None,
                        help='another set (e.g. the roadscene folder) whose train crops share '
                             'the fusion loss, half and half with the MSRS batch')
    parser.add_argument('--mix-batch', type=int, default=16, help='crops of --mix per step')
    parser.add_argument('--mix-crop', type=int, default=128, help='side of the --mix crops')
    args = parser.parse_args()
    if not (args.data / 'split.json').is_file():
        print(f'detection_finetune: error: {args.data} has no split.json', file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    first_stage, payload = load_weights(args.init, FIRST_KIND, FirstStageNet.from_arch)
    loss_weights = dict(payload.get('info', {}).get('loss_weights') or DEFAULT_WEIGHTS)
    refiner = None
    if args.refiner_steps > 0:
        refiner = load_weights(args.refiner, REFINER_KIND, RefinerNet.from_arch)[0]
        refiner.eval()
        for p in refiner.parameters():
            p.requires_grad_(False)
    train = load_train(args.data, args.labels, args.limit)
    noise = refiner_noise(train['planes'].shape[-2:])
    sampler = mix_sampler(args)
    print(f'{len(train["names"])} train pairs read'
          + (f', {len(sampler.samples)} of {args.mix}' if sampler else '')
          + f' ({time.perf_counter() - t0:.0f} s)', flush=True)
    first_stage.eval()
    t1 = time.perf_counter()
    detector = pretrain_detector(args, train, first_stage, refiner, noise)
    pre_history = detector.history
    t2 = time.perf_counter()
    history = joint(args, train, first_stage, refiner, detector, noise, loss_weights, sampler)
    t3 = time.perf_counter()
    info = {**payload.get('info', {}),
            'command': command(), 'loss_weights': loss_weights,
            'finetune': {'what': 'fusion loss + lambda * FCOS detection loss (issue #23)',
                         'data': f'{args.data} train split ({len(train["names"])} pairs)',
                         'init': str(args.init), 'lambda': args.lam, 'steps': args.steps,
                         'batch': args.batch, 'lr': args.lr, 'det_lr': args.det_lr,
                         'pre_epochs': args.pre_epochs, 'refiner_steps': args.refiner_steps,
                         'seed': args.seed,
                         'mix': (f'{args.mix} train crops ({len(sampler.samples)} pairs, '
                                 f'{args.mix_batch} x {args.mix_crop}^2 per step)'
                                 if sampler else None)}}
    save_weights(args.out, FIRST_KIND, first_stage.arch, first_stage, info)
    summary = {'command': command(), 'lambda': args.lam, 'pretrain_history': pre_history,
               'joint_history': history,
               'seconds': {'read': round(t1 - t0, 1), 'pretrain': round(t2 - t1, 1),
                           'joint': round(t3 - t2, 1), 'total': round(t3 - t0, 1)},
               'out': str(args.out)}
    (args.work / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(f'wrote {args.out} ({t3 - t0:.0f} s in all)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
