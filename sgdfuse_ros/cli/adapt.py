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

r"""
``sgdfuse adapt``: fine-tune the learned stages on a recording of your own cameras, no labels.

    sgdfuse adapt my_robot_bag/ --out adapted/
    ros2 run sgdfuse_ros fusion_node --ros-args --params-file config/fusion.yaml \
        -p first_stage.weights:=adapted/first_stage.pt -p refiner.weights:=adapted/refiner.pt

Frames are sampled evenly from the bag (``--frames``), read and decoded exactly as the node and
``sgdfuse replay`` read them (:mod:`sgdfuse_ros.training.bag_data`: the two camera topics found
from types, encodings and names, any encoding the node accepts, pairs by stamps with the node's
synchroniser, AGC, registration and prior from ``--config`` / ``--set``). Starting from the
shipped weights (or ``--first-stage`` / ``--refiner``), each stage is trained with the same
no-reference fusion losses it was trained with (the loss weights stored in its weights file) at
a lower learning rate. A few frames are held out: the weights written are those that score best
on them against the un-adapted stage (the selection score of ``sgdfuse train``, the same 9
metrics). ``--stage``: ``first-stage``, ``refiner`` (on the starting first stage) or ``both``
(default: the first stage, then the refiner on the adapted first stage).

``--out DIR`` receives ``first_stage.pt`` and/or ``refiner.pt``, the files the node loads with
``first_stage.weights`` / ``refiner.weights``. Checkpoints go to ``--work`` (default
``DIR/adapt_work``, saved every 2 minutes and when a run stops): running the same command again
resumes where it stopped and says from which step (``--minutes`` / ``--stop-after`` stop
cleanly; so do Ctrl-C, SIGTERM and SIGHUP, at the next step, exit 130 / 143 / 129);
``--fresh`` starts over. A full disk is one line, exit 2, the previous checkpoint kept.

Bad input (no such bag, no camera topics, no pairs, an unwritable ``--out``, unreadable starting
weights) is one line and exit status 2, before any training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import sys
import time

import torch

from .guard import stop_request
from .options import add_camera_topics, add_config, add_input_bag
from .outputs import check_apart, config_inputs
from .train import kept_checkpoint
from .values import (crop_size, int_at_least, learning_rate, loss_weights, minutes, seed,
                     threads)
from .. import writing
from ..bag.reader import choose_topics, open_bag
from ..config import check_model_file, first_stage_path, load_config, resolve_model_path
from ..errors import InputError
from ..fusion.network import FirstStageNet, load_first_stage
from ..fusion.refiner import RefinerNet
from ..fusion.weights import load_weights
from ..hardware import resolve_device
from ..progress import Progress
from ..training.bag_data import read_bag_frames
from ..training.data import CropSampler
from ..training.loop import train
from ..training.losses import DEFAULT_WEIGHTS
from ..training.tasks import FirstStageTask, REFINER_LOSS_WEIGHTS, RefinerTask
from ..writing import os_error_line, write_bytes

STAGES = ('first-stage', 'refiner', 'both')
SETTINGS_FILE = 'adapt.json'
DONE_FILE = 'done.json'
#: config keys that change what the frames look like: a checkpoint made with others is not resumed
FRAME_KEYS = ('registration.homography', 'registration.resize_mismatched', 'output.width',
              'output.height', 'agc.mode', 'agc.low_percentile', 'agc.high_percentile',
              'agc.min_span', 'agc.smoothing', 'agc.fixed_min', 'agc.fixed_max', 'sync.slop',
              'sync.queue_size', 'prior.source', 'limits.max_input_pixels')


def add_arguments(parser) -> None:
    add_input_bag(parser)
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='folder for the adapted first_stage.pt / refiner.pt')
    parser.add_argument('--stage', choices=STAGES, default='both',
                        help='what to adapt (default both: first stage, then the refiner on it)')
    parser.add_argument('--steps', type=int_at_least(1), default=600,
                        help='first-stage optimiser steps (default 600)')
    parser.add_argument('--refiner-steps', type=int_at_least(1), default=400,
                        help='refiner optimiser steps (default 400)')
    parser.add_argument('--frames', type=int_at_least(1), default=300,
                        help='pairs sampled evenly from the bag (default 300)')
    parser.add_argument('--val-frames', type=int_at_least(0), default=16,
                        help='of those, held out for choosing the weights (default 16)')
    parser.add_argument('--val-every', type=int_at_least(0), default=100,
                        help='score the held-out pairs every N steps (default 100)')
    parser.add_argument('--batch', type=int_at_least(1), default=8,
                        help='crops per step (default 8)')
    parser.add_argument('--crop', type=crop_size, default=128,
                        help='square crop size, a multiple of 8 (default 128; smaller frames '
                             'lower it)')
    parser.add_argument('--lr', type=learning_rate, default=5e-4,
                        help='peak learning rate (AdamW, cosine decay; default 5e-4), in (0, 1]')
    parser.add_argument('--seed', type=seed, default=0,
                        help='seed of crops, flips and noise (0 .. 2^32-1)')
    parser.add_argument('--first-stage', metavar='W', default=None,
                        help="starting first-stage weights (default: the config's "
                             'first_stage.weights, i.e. the shipped file)')
    parser.add_argument('--refiner', metavar='W', default=None,
                        help="starting refiner weights (default: the config's refiner.weights)")
    parser.add_argument('--loss-weights', metavar='JSON', default=None, type=loss_weights,
                        help='loss weights replacing those stored in the starting weights file '
                             "(keys as in `sgdfuse train --help`); applied to both stages' own "
                             'weights, e.g. \'{"visible_lead": 0}\'')
    add_camera_topics(parser)
    add_config(parser, ': registration, AGC, sync, prior')
    parser.add_argument('--work', metavar='DIR', default=None,
                        help='checkpoints and logs (default OUT/adapt_work)')
    parser.add_argument('--fresh', action='store_true',
                        help="start over, discarding --work's checkpoints")
    parser.add_argument('--minutes', type=minutes, default=None,
                        help='stop cleanly after this many minutes of training per stage; run '
                             'again to continue')
    parser.add_argument('--stop-after', type=int_at_least(1), default=None, metavar='N',
                        help='stop cleanly after N steps in this run; run again to continue')
    parser.add_argument('--threads', type=threads, default=0,
                        help='torch CPU threads (0 = default, at most 256)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    parser.add_argument('--quiet', action='store_true', help='no progress output')


# --- checks before any work ---------------------------------------------------------------------

def writable_folder(path: Path, option: str) -> Path:
    """Create ``path`` if needed and prove a file can be written in it; InputError otherwise."""
    if path.exists() and not path.is_dir():
        raise InputError(f'{option} {path} exists and is not a folder')
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f'.sgdfuse_write_test_{os.getpid()}'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as err:
        raise InputError(f'{option} {path} is not writable ({type(err).__name__}: '
                         f'{err.strerror or err})') from None
    return path


def file_digest(path: Path) -> str:
    """Return the first 16 hex digits of the file's SHA-256 (what ``.done`` files record)."""
    return writing.file_digest(path)[:16]


def start_paths(args, config: dict) -> dict:
    """Return the starting weights files, ``{stage: path}`` (no refiner for ``first-stage``)."""
    paths = {'first_stage': (Path(args.first_stage) if args.first_stage else
                             first_stage_path(config))}
    if args.stage != 'first-stage':
        paths['refiner'] = (Path(args.refiner) if args.refiner
                            else resolve_model_path(config['refiner.weights'], 'refiner.pt'))
    return paths


def start_weights(args, config: dict) -> dict:
    """
    Return the starting weights per stage: ``{stage: (path, model, payload)}``.

    Each file is checked and loaded (one-line ConfigError if missing, unreadable or mismatched).
    """
    paths = start_paths(args, config)
    first = paths['first_stage']
    check_model_file(first, '--first-stage', 'first-stage network weights (.pt)')
    out = {'first_stage': (first, *load_weights(first, 'first_stage', FirstStageNet.from_arch))}
    if args.stage != 'first-stage':
        refiner = paths['refiner']
        check_model_file(refiner, '--refiner', 'refiner weights (.pt)')
        out['refiner'] = (refiner, *load_weights(refiner, 'refiner', RefinerNet.from_arch))
    return out


def run_settings(args, config: dict, bag_path: Path, starts: dict) -> dict:
    """Return what the checkpoints depend on (a checkpoint made under others is not resumed)."""
    storage = sorted(p for p in ([bag_path] if bag_path.is_file() else bag_path.iterdir())
                     if p.suffix in ('.db3', '.mcap', '.yaml'))
    return {'bag': str(bag_path.resolve()),
            'bag_files': {p.name: p.stat().st_size for p in storage},
            'stage': args.stage, 'steps': args.steps, 'refiner_steps': args.refiner_steps,
            'frames': args.frames, 'val_frames': args.val_frames, 'val_every': args.val_every,
            'batch': args.batch, 'crop': args.crop, 'lr': args.lr, 'seed': args.seed,
            'thermal_topic': args.thermal_topic, 'rgb_topic': args.visible_topic,
            'loss_weights': args.loss_weights,
            'start': {k: file_digest(path) for k, (path, _, _) in starts.items()},
            'config': {k: config[k] for k in FRAME_KEYS}}


def check_work(work: Path, settings: dict, fresh: bool) -> bool:
    """Return whether to resume; a --work of another adaptation is an error unless --fresh."""
    record = work / SETTINGS_FILE
    settings = json.loads(json.dumps(settings))  # as it reads back
    if fresh:
        for name in ('first-stage', 'refiner'):
            shutil.rmtree(work / name, ignore_errors=True)
        record.unlink(missing_ok=True)
        return False
    if not record.is_file():
        return False
    try:
        previous = json.loads(record.read_text())
    except (OSError, ValueError):
        previous = None
    if previous != settings:
        differs = sorted(k for k in settings
                         if not isinstance(previous, dict) or previous.get(k) != settings[k])
        what = ', '.join(differs) or 'settings'
        raise InputError(f'--work {work} holds checkpoints of another adaptation (different '
                         f'{what}); pass --fresh to start over or choose another --work')
    return True


# --- the stages ----------------------------------------------------------------------------------

def _stage_done(folder: Path, out: Path) -> bool:
    done = folder / DONE_FILE
    if not (done.is_file() and out.is_file()):
        return False
    try:
        return json.loads(done.read_text()).get('digest') == file_digest(out)
    except (OSError, ValueError):
        return False


def adapt_stage(name: str, task, reference_task, frames, out: Path, work: Path, steps: int,
                args, info: dict, resume: bool, crop: int, stop=None) -> dict:
    """Train one stage from its starting weights; ``reference_task`` = the un-adapted stage."""
    folder = work / name
    if resume and _stage_done(folder, out):
        if not args.quiet:
            print(f'adapt: {name} already adapted ({out}); skipped', file=sys.stderr)
        return {'steps': steps, 'stopped_early': False, 'skipped': True}
    task.reference_fuse = reference_task.fuse  # the selection score: gain over the start
    sampler = CropSampler(frames.train, crop, args.seed)
    resume_stage = resume and (folder / 'checkpoint.pt').is_file()
    try:  # says "resuming from step N" when it does
        summary = train(task, sampler, frames.val, out, folder, steps, args.batch, lr=args.lr,
                        resume=resume_stage, val_every=args.val_every if frames.val else 0,
                        minutes=args.minutes, quiet=args.quiet, info=info,
                        stop_after=args.stop_after, stop=stop, label=f'adapt: {name}: ')
    except OSError as err:  # a full disk: the last checkpoint written stays as it was
        raise InputError(f'{os_error_line(err)}; {kept_checkpoint(folder)}') from None
    if summary['interrupted'] and summary['stopped_early']:
        wrote = (f'{out} holds the best weights so far' if summary['wrote_out']
                 else f'{out} left as it was')
        raise stop.interrupted(f"{name} stopped at step {summary['steps']} of {steps}; "
                               f"checkpoint {folder / 'checkpoint.pt'}; {wrote}; the same "
                               f"command continues from step {summary['steps']}")
    if (not summary['stopped_early'] and summary['best_metrics'] is not None
            and summary['best_score'] <= 0):
        # no adapted checkpoint beat the starting weights on the held-out frames: keep those
        task.model.load_state_dict(reference_task.model.state_dict())
        task.save(out, {**info, **{k: v for k, v in summary.items() if k != 'seconds'},
                        'kept_start': True})
        summary['kept_start'] = True
    if not summary['stopped_early']:
        write_bytes(folder / DONE_FILE, json.dumps({'digest': file_digest(out),
                                                    'steps': summary['steps']}).encode())
    return summary


def _report(name: str, summary: dict, out: Path, steps: int, quiet: bool) -> None:
    if summary.get('skipped') or (quiet and not summary['stopped_early']):
        return
    if summary['stopped_early']:
        print(f"adapt: {name} stopped at step {summary['steps']} of {steps}; {out} holds the "
              f'best weights so far; run the same command again to continue', file=sys.stderr)
        return
    score = summary['best_score']
    if summary['best_metrics'] is None:
        print(f"adapt: {name}: {summary['steps']} steps, no held-out frames: wrote the last "
              f'weights to {out}', file=sys.stderr)
        return
    if summary.get('kept_start'):
        print(f'adapt: {name}: no adapted checkpoint scored better than the starting weights on '
              f'the held-out frames of the bag (best {score:+.4f}): wrote the starting weights '
              f'to {out}', file=sys.stderr)
        return
    print(f'adapt: {name}: best held-out score {score:+.4f} over the starting weights (mean '
          f'log ratio of the 9 metrics on the held-out frames of the bag) -> {out}',
          file=sys.stderr)
    print('adapt: held-out frames: ' + ' '.join(
        f'{k}={v:.3f}' for k, v in summary['best_metrics'].items()), file=sys.stderr)


def main(args) -> int:

    t_start = time.monotonic()
    config = load_config(args.config, dict(args.overrides))
    starts = start_paths(args, config)
    check_apart([('BAG', args.bag)] + config_inputs(args.config)
                + [('--first-stage' if stage == 'first_stage' else '--refiner', path)
                   for stage, path in starts.items()],
                [('--out', args.out), ('--work', args.work)], outputs_apart=False)
    # as the node treats device=cuda without a GPU: one warning and the CPU, or (with
    # device_fallback: false) a one-line refusal, before any work
    device = resolve_device({'device': args.device, 'device_fallback': config['device_fallback']})
    out_dir = writable_folder(Path(args.out), '--out')
    work = writable_folder(Path(args.work) if args.work else out_dir / 'adapt_work', '--work')
    starts = start_weights(args, config)
    bag_path = Path(args.bag)

    def say(text: str) -> None:
        if not args.quiet:
            print(f'adapt: {text}', file=sys.stderr)

    with open_bag(bag_path) as bag:
        topics = choose_topics(bag, args.thermal_topic, args.visible_topic)
        settings = run_settings(args, config, bag_path, starts)
        resume = check_work(work, settings, args.fresh)
        say(f'{bag.description}; {topics.describe()}')
        expected = min(topics.thermal.count, topics.visible.count)
        with Progress(expected, label='adapt: reading', unit='pairs', quiet=args.quiet) as bar:
            frames = read_bag_frames(bag, topics, config, args.frames, args.val_frames, bar)
    say(frames.describe())
    for note in frames.notes:
        say(note)
    # from here to the end a signal stops at the next training step; the checkpoint is written
    # whatever else arrives, and the same command continues from it
    stop = stop_request().protect()
    write_bytes(work / SETTINGS_FILE, json.dumps(settings, indent=1).encode())  # whole or none

    if args.threads:
        torch.set_num_threads(args.threads)
    crop = min(args.crop, min(frames.size) // 8 * 8)
    if crop < 32:
        raise InputError(f'frames of {frames.size[1]}x{frames.size[0]} are too small to adapt on '
                         f'(at least 32x32)')
    if crop != args.crop:
        say(f'crop {crop} (the frames are {frames.size[1]}x{frames.size[0]})')
    command_args = sys.argv[2:] if sys.argv[1:2] == ['adapt'] else sys.argv[1:]
    info = {'data': f'bag {bag_path.resolve()} (no labels)',
            'bag_topics': [topics.thermal.name, topics.visible.name],
            'train_pairs': len(frames.train), 'val_pairs': len(frames.val), 'crop': crop,
            'batch': args.batch, 'lr': args.lr, 'seed': args.seed, 'device': device,
            'command': ('sgdfuse adapt ' + ' '.join(command_args)).strip()}

    first_path, first_model, first_payload = starts['first_stage']
    if args.stage in ('first-stage', 'both'):
        arch = dict(first_payload['arch'])
        weights = _loss_weights(first_payload, args.loss_weights)
        task = FirstStageTask(arch, device, weights)
        task.model.load_state_dict(first_model.state_dict())
        reference = FirstStageTask(arch, device, weights)
        reference.model.load_state_dict(first_model.state_dict())
        reference.model.eval()
        out = out_dir / 'first_stage.pt'
        say(f'first stage: {args.steps} steps of {args.batch}x{crop}^2 from {first_path} on '
            f'{device}')
        torch.manual_seed(args.seed)
        summary = adapt_stage('first-stage', task, reference, frames, out, work, args.steps,
                              args, dict(info, adapted_from=str(first_path)), resume, crop,
                              stop)
        _report('first stage', summary, out, args.steps, args.quiet)
        if summary['stopped_early']:
            return 0
        if stop.requested and args.stage == 'both':
            raise stop.interrupted(f'after the first stage ({out}, complete); the same command '
                                   f'continues with the refiner')
        first_model = load_first_stage(out).model
    if args.stage in ('refiner', 'both'):
        refiner_path, refiner_model, refiner_payload = starts['refiner']
        arch = dict(refiner_payload['arch'])
        weights = _loss_weights(refiner_payload, args.loss_weights)
        task = RefinerTask(arch, first_model, device, weights, seed=args.seed)
        task.model.load_state_dict(refiner_model.state_dict())
        reference = RefinerTask(arch, first_model, device, weights, seed=args.seed)
        reference.model.load_state_dict(refiner_model.state_dict())
        reference.model.eval()
        out = out_dir / 'refiner.pt'
        say(f'refiner: {args.refiner_steps} steps of {args.batch}x{crop}^2 from {refiner_path}')
        torch.manual_seed(args.seed + 1)
        summary = adapt_stage('refiner', task, reference, frames, out, work, args.refiner_steps,
                              args, dict(info, adapted_from=str(refiner_path)), resume, crop,
                              stop)
        _report('refiner', summary, out, args.refiner_steps, args.quiet)
        if summary['stopped_early']:
            return 0
    minutes = (time.monotonic() - t_start) / 60.0
    sets = []
    if args.stage in ('first-stage', 'both'):
        sets.append(f"--set first_stage.weights={out_dir / 'first_stage.pt'}")
    if args.stage in ('refiner', 'both'):
        sets.append(f"--set refiner.weights={out_dir / 'refiner.pt'}")
    say(f"done in {minutes:.1f} min; use them with {' '.join(sets)}")
    return 0


def _loss_weights(payload: dict, override: dict = None):
    """
    Return the loss weights the starting stage was trained with, updated by ``--loss-weights``.

    None (the stage's defaults) when the file stores none and nothing overrides them.
    """
    weights = (payload.get('info') or {}).get('loss_weights')
    weights = dict(weights) if isinstance(weights, dict) else None
    if override:
        if weights is None:
            refiner = payload.get('kind') == 'refiner'
            weights = dict(REFINER_LOSS_WEIGHTS if refiner else DEFAULT_WEIGHTS)
        weights.update(override)  # checked at parse time (values.loss_weights)
    return weights
