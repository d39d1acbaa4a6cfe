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
``sgdfuse train first-stage|refiner``: train a learned stage on the TRAIN split.

    sgdfuse train first-stage --data ~/data/roadscene --out models/first_stage.pt
    sgdfuse train refiner --first-stage models/first_stage.pt --out models/refiner.pt

Only split.json's ``train`` names are read (a few of them are held out for validation and model
selection); the test pairs are never touched. Checkpoints, the JSONL log and the progress go to
``--work`` (default ``outputs/train/<stage>``); ``--resume`` continues from its checkpoint (and
says from which step), ``--fresh`` starts over; a ``--work`` that holds a checkpoint is refused
without one of them. Ctrl-C, SIGTERM and SIGHUP stop at the next step with a checkpoint (exit
130 / 143 / 129); a full disk is one line, exit 2, the previous checkpoint kept.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

import torch

from .guard import stop_request
from .outputs import check_apart
from .outputs import check_output_dir, check_output_file
from .values import (arch_json, crop_size, float_range, int_at_least, learning_rate,
                     loss_weights, minutes, seed, threads)
from ..config import models_dir
from ..errors import ConfigError, first_line, InputError, torch_file_problem
from ..eval.datasets import default_data_dir
from ..fusion import network, refiner
from ..fusion.weights import check_tensors
from ..hardware import resolve_device
from ..training.data import (attach_boxes, CropSampler, load_samples, MixedCropSampler,
                             split_train_names, VAL_EVERY)
from ..training.loop import checkpoint_step, CKPT_NAME, train
from ..training.tasks import FirstStageTask, RefinerTask
from ..writing import os_error_line


def add_arguments(parser) -> None:
    parser.add_argument('stage', choices=('first-stage', 'refiner'), help='what to train')
    parser.add_argument('--data', default=None, help='RoadScene-layout folder (default: '
                        '$SGDFUSE_DATA)')
    parser.add_argument('--extra-data', action='append', default=[], metavar='DIR',
                        help='another data set (same layout; its train split only) mixed in '
                             'equal shares per batch, e.g. an MSRS folder (repeatable)')
    parser.add_argument('--sam-share', type=float_range(0.0, 1.0), default=0.3,
                        help='share of crops with labelled boxes (MSRS) given a SAM-like prior '
                             'drawn from the boxes instead of the thermal fallback')
    parser.add_argument('--init', default=None,
                        help='start from these weights of the same stage (matching tensors; a '
                             'head with more outputs keeps its new rows at zero)')
    parser.add_argument('--out', default=None, help='weights file to write (default: '
                        'models/first_stage.pt or models/refiner.pt)')
    parser.add_argument('--work', default=None, help='checkpoint + log folder '
                        '(default outputs/train/<stage>)')
    parser.add_argument('--steps', type=int_at_least(1), default=4000, help='optimiser steps')
    parser.add_argument('--crop', type=crop_size, default=128, help='square crop size (pixels)')
    parser.add_argument('--batch', type=int_at_least(1), default=8, help='crops per step')
    parser.add_argument('--lr', type=learning_rate, default=2e-3,
                        help='peak learning rate (AdamW), in (0, 1]')
    parser.add_argument('--seed', type=seed, default=0,
                        help='seed of crops, flips, noise, init (0 .. 2^32-1)')
    parser.add_argument('--resume', action='store_true', help="continue from --work's checkpoint")
    parser.add_argument('--fresh', action='store_true',
                        help="start over, deleting --work's checkpoint and log (without --resume "
                             'or --fresh, a --work that holds a checkpoint is refused)')
    parser.add_argument('--val-every', type=int_at_least(1), default=250,
                        help='validate on held-out TRAIN pairs every N steps (0 = never)')
    parser.add_argument('--val-pairs', type=int_at_least(0), default=14,
                        help='hold out every N-th train pair for validation (0 = none)')
    parser.add_argument('--minutes', type=minutes, default=None,
                        help='stop cleanly after this many minutes (checkpoint kept)')
    parser.add_argument('--threads', type=threads, default=0,
                        help='torch CPU threads (0 = default, at most 256)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    parser.add_argument('--first-stage', default=None,
                        help='refiner: frozen first-stage weights (default models/first_stage.pt)')
    parser.add_argument('--arch', default=None, type=arch_json,
                        help="JSON of architecture hyper-parameters (default: the stage's own)")
    parser.add_argument('--loss-weights', type=loss_weights, default=None,
                        help='JSON of loss weights, replacing the stage defaults; keys: '
                             'intensity, gradient, gradient_deficit, gradient_vector, ssim, '
                             'scd, contrast, visible_lead, lead_edges (daylight-sky terms), '
                             'target_contrast (warm targets), target_weight, contrast_ratio, '
                             'denoise (refiner); see '
                             'models/README.md')


def main(args) -> int:

    data_dir = Path(args.data) if args.data else default_data_dir()
    if data_dir is None:
        raise InputError('no data folder: pass --data DIR or set SGDFUSE_DATA')
    kind = args.stage.replace('-', '_')
    out = Path(args.out) if args.out else models_dir() / f'{kind}.pt'
    work = Path(args.work) if args.work else Path('outputs') / 'train' / args.stage
    check_output_file(out, '--out')  # before the data are loaded
    check_output_dir(work, '--work')
    check_apart(training_inputs(args, data_dir), [('--out', out), ('--work', work)],
                outputs_apart=False)
    check_apart([], [('--out', out)] + [('--work', work / name) for name in
                                        (CKPT_NAME, 'log.jsonl', CKPT_NAME + '.tmp')])
    check_work(work, args.resume, args.fresh)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device({'device': args.device, 'device_fallback': True})  # as the node
    torch.manual_seed(args.seed)
    arch = dict(args.arch) if args.arch else None  # checked at parse time (values.py)
    weights = dict(args.loss_weights) if args.loss_weights else None
    if arch is not None:
        check_arch_builds(arch, args.stage)

    if args.extra_data:
        samples, val_samples, sampler = mixed_data([data_dir] + [Path(d) for d in
                                                                 args.extra_data],
                                                   args.val_pairs, args.crop, args.seed,
                                                   args.sam_share)
    else:
        train_names, val_names = split_train_names(data_dir, args.val_pairs)
        samples = load_samples(data_dir, train_names)
        val_samples = load_samples(data_dir, val_names)
        sampler = CropSampler(samples, args.crop, args.seed)
    if args.stage == 'first-stage':
        task = FirstStageTask(arch or network.DEFAULT_ARCH, device, weights)
    else:
        first_path = (Path(args.first_stage) if args.first_stage
                      else models_dir() / 'first_stage.pt')
        first = network.load_first_stage(first_path, device)
        task = RefinerTask(arch or refiner.DEFAULT_ARCH, first.model, device, weights,
                           seed=args.seed)
    if args.init:
        init_from(task.model, Path(args.init), task.kind)
    command_args = sys.argv[2:] if sys.argv[1:2] == ['train'] else sys.argv[1:]
    command = 'sgdfuse train ' + ' '.join(command_args)
    data_names = ', '.join(Path(d).name for d in [data_dir] + list(args.extra_data))
    info = {'data': f'train splits of {data_names}', 'train_pairs': len(samples),
            'val_pairs': len(val_samples), 'crop': args.crop, 'batch': args.batch,
            'lr': args.lr, 'seed': args.seed, 'device': device, 'command': command.strip()}
    print(f'training {args.stage} on {len(samples)} train pairs ({len(val_samples)} held out '
          f'for validation), {args.steps} steps of {args.batch}x{args.crop}^2 on {device}',
          file=sys.stderr)
    # from here to the end a signal stops at the next step; the checkpoint is written whatever
    # else arrives
    stop = stop_request().protect()
    if args.fresh:
        for name in (CKPT_NAME, 'log.jsonl'):
            (work / name).unlink(missing_ok=True)
    try:
        summary = train(task, sampler, val_samples, out, work, args.steps, args.batch,
                        lr=args.lr, resume=args.resume, val_every=args.val_every,
                        minutes=args.minutes, info=info, stop=stop, label='train: ')
    except OSError as err:  # a full disk: the last checkpoint written stays as it was
        raise InputError(f'{os_error_line(err)}; {kept_checkpoint(work)}') from None
    if summary['interrupted'] and summary['stopped_early']:
        wrote = (f'; {out} holds the best weights so far' if summary['wrote_out']
                 else f'; {out} left as it was')
        raise stop.interrupted(f"stopped at step {summary['steps']} of {args.steps}; checkpoint "
                               f'{work / CKPT_NAME}{wrote}; the same command with --resume '
                               f"continues from step {summary['steps']}")
    print(f"wrote {out} after {summary['steps']} steps ({summary['seconds'] / 60:.1f} min); "
          f"best validation score {summary['best_score']:+.4f}", file=sys.stderr)
    if summary['best_metrics']:
        print('validation (held-out train pairs): ' + ' '.join(
            f'{k}={v:.3f}' for k, v in summary['best_metrics'].items()
            if isinstance(v, float)), file=sys.stderr)
        if 'targets' in summary['best_metrics']:
            print('target contrast kept (median; all, night, day): ' + ' '.join(
                f'{v:.3f}' for v in summary['best_metrics']['targets'].values()),
                file=sys.stderr)
    return 0


def training_inputs(args, data_dir: Path) -> list:
    """Return what ``train`` reads: the data sets' images, splits, labels, weights files."""
    found = []
    sets = [('--data', data_dir)] + [('--extra-data', d) for d in args.extra_data]
    for option, folder in sets:
        found += [(f'{option} {folder}', Path(folder) / name)
                  for name in ('ir', 'vis', 'split.json', 'labels')]
    found.append(('--init', args.init))
    if args.stage == 'refiner':
        found.append(('--first-stage', args.first_stage or models_dir() / 'first_stage.pt'))
    return found


def _checkpoint(work: Path):
    """Return ``(path, step)`` of ``work``'s checkpoint; step None when none can be read."""
    return work / CKPT_NAME, checkpoint_step(work)


def check_work(work: Path, resume: bool, fresh: bool) -> None:
    """Refuse a --work that holds a checkpoint unless --resume or --fresh says what to do."""
    if resume and fresh:
        raise InputError('--resume and --fresh exclude each other')
    path, step = _checkpoint(work)
    if resume or fresh or not path.is_file():
        return
    at = f' at step {step}' if step is not None else ''
    raise InputError(f'--work {work} holds the checkpoint of an earlier run{at}: pass --resume '
                     f'to continue from it, --fresh to start over, or choose another --work')


def kept_checkpoint(work: Path) -> str:
    """Say what a failed write left: the checkpoint of the last step that was saved, if any."""
    path, step = _checkpoint(work)
    if step is None:
        return 'no checkpoint was written yet'
    return f'{path} (step {step}) is as it was'


def check_arch_builds(arch: dict, stage: str) -> None:
    """Build ``--arch`` on the meta device (no memory): unknown or bad keys are one line."""
    build = (network.FirstStageNet if stage == 'first-stage' else refiner.RefinerNet).from_arch
    try:
        with torch.device('meta'):
            build(dict(arch))
    except (TypeError, ValueError, KeyError, RuntimeError, ZeroDivisionError) as err:
        raise ConfigError(f'--arch {json.dumps(arch)[:120]} does not build a {stage} network '
                          f'({first_line(err, 160, type(err).__name__)})') from None


def mixed_data(data_dirs, val_pairs: int, crop: int, seed: int, sam_share: float):
    """Train samples, validation samples and a mixed sampler over several data sets."""
    groups, val_samples = [], []
    for data_dir in data_dirs:
        group = 'msrs' if (Path(data_dir) / 'labels').is_dir() else Path(data_dir).name
        every = VAL_EVERY.get(group, val_pairs) if val_pairs == 14 else val_pairs
        train_names, val_names = split_train_names(data_dir, every)
        groups.append(attach_boxes(load_samples(data_dir, train_names), data_dir, group))
        val_samples += attach_boxes(load_samples(data_dir, val_names), data_dir, group)
    sampler = MixedCropSampler(groups, crop, seed, sam_share=sam_share)
    return [s for g in groups for s in g], val_samples, sampler


def init_from(model, path: Path, kind: str) -> None:
    """Copy matching tensors of a weights file into ``model`` (a larger head keeps new rows)."""
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise ConfigError(f'--init {path} cannot be read: {torch_file_problem(err, path)}'
                          ) from None
    state = payload.get('state_dict') if isinstance(payload, dict) and \
        payload.get('kind') == kind else None
    if state is None:
        raise ConfigError(f'--init {path}: not a {kind} weights file')
    check_tensors(state, f'--init {kind}', path)
    own = model.state_dict()
    for name, value in state.items():
        if name not in own:
            continue
        target = own[name]
        if target.shape == value.shape:
            target.copy_(value)
        elif target.dim() == value.dim() and target.shape[1:] == value.shape[1:] \
                and target.shape[0] > value.shape[0]:
            target[:value.shape[0]].copy_(value)
    model.load_state_dict(own)
