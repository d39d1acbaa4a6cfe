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
The training loop shared by both stages.

Seeded crops, AdamW with cosine decay, a progress line on stderr (rate, ETA), a JSONL log of the
loss terms and validation metrics, checkpoints every few minutes (model, optimiser, step, RNG
states, best model so far) and resume.

A *task* (see :mod:`sgdfuse_ros.training.tasks`) supplies the model, the loss of a batch and a
``fuse(sample)`` used for validation on held-out TRAIN pairs. The weights written to ``out`` are
those of the best validation score (model selection never sees the test split).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import sys
import time
from typing import List, Optional

import numpy as np
import torch

from ..errors import ConfigError, error_line
from ..eval.metrics import fusion_metrics, HEADLINE_METRICS, to_gray
from ..eval.target_boxes import contrast_ratios, summarise, warm_boxes
from ..fusion.weights import save_atomically
from ..progress import Progress

CKPT_NAME = 'checkpoint.pt'


def validation_metrics(fuse, samples) -> dict:
    """
    Score ``fuse`` over samples with the mean headline metrics.

    ``fuse(sample)`` returns fused BGR uint8; scored as ``sgdfuse evaluate`` does (fused colour
    image read as gray). Samples of several data sets (``Sample.group``) count equally per set:
    the result is the mean of the per-set means, which are under ``"groups"`` when there are
    several; samples with labelled boxes add ``"targets"`` (the box-based target measure,
    :mod:`sgdfuse_ros.eval.target_boxes`: median kept contrast, night and day).
    """
    rows, ratios = {}, {}
    for s in samples:
        bgr = fuse(s)
        gray = to_gray(bgr)
        rows.setdefault(getattr(s, 'group', ''), []).append(
            fusion_metrics(gray, s.thermal_u8.astype(np.float64), to_gray(s.visible_bgr),
                           HEADLINE_METRICS))
        if getattr(s, 'boxes', None):
            warm = warm_boxes(s.thermal_u8, s.boxes)
            if warm:
                ratios[s.name] = contrast_ratios(gray, warm)
    groups = {g: {k: float(np.mean([r[k] for r in rs])) for k in HEADLINE_METRICS}
              for g, rs in rows.items()}
    out = {k: float(np.mean([g[k] for g in groups.values()])) for k in HEADLINE_METRICS}
    if len(groups) > 1:
        out['groups'] = groups
    if ratios:
        summary = summarise(ratios)
        out['targets'] = {k: summary[k]['median'] for k in ('all', 'night', 'day')}
    return out


def _clipped_logs(metrics: dict, reference: dict) -> list:
    parts = []
    for k in HEADLINE_METRICS:
        ref, val = reference.get(k, 0.0), metrics.get(k, 0.0)
        if ref > 0 and val > 0:
            parts.append(float(np.clip(math.log(val / ref), -0.25, 0.25)))
    return parts


def selection_score(metrics: dict, reference: dict) -> float:
    """
    Score metrics against a reference: the mean of clipped log ratios.

    The mean over the headline metrics of log(value / reference), each clipped to +-0.25 (so no
    single metric, e.g. SD, buys the others). With several data sets (``"groups"``) each set's
    mean counts once; with box measures (``"targets"``) the clipped log ratio of the mean of the
    night and day median kept contrast counts as one more set.
    """
    if 'groups' in metrics and 'groups' in reference:
        parts = [float(np.mean(_clipped_logs(m, reference['groups'].get(g, {})) or [0.0]))
                 for g, m in metrics['groups'].items()]
    else:
        parts = [float(np.mean(_clipped_logs(metrics, reference) or [0.0]))]
    if 'targets' in metrics and 'targets' in reference:
        val = 0.5 * (metrics['targets']['night'] + metrics['targets']['day'])
        ref = 0.5 * (reference['targets']['night'] + reference['targets']['day'])
        if val > 0 and ref > 0:
            parts.append(float(np.clip(math.log(val / ref), -0.25, 0.25)))
    return float(np.mean(parts)) if parts else 0.0


def checkpoint_step(work: Path) -> Optional[int]:
    """Return the step of ``work``'s checkpoint; None when there is none (or it is unreadable)."""
    path = Path(work) / CKPT_NAME
    if not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location='cpu', weights_only=True)['step'])
    except Exception:  # noqa: B902 - resuming says what is wrong with it
        return None


class _Log:
    """The JSONL log, line-buffered: a failed write raises at once, naming the file."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = path.open('a', buffering=1)

    def _do(self, call, *args):
        try:
            return call(*args)
        except OSError as err:
            if err.filename is None:
                err.filename = str(self.path)
            try:
                self.handle.close()
            except OSError:
                pass
            raise

    def write(self, text: str) -> None:
        self._do(self.handle.write, text)

    def flush(self) -> None:
        self._do(self.handle.flush)

    def close(self) -> None:
        self._do(self.handle.close)


def _keep_log_until(log_path: Path, step: int) -> None:
    """Drop the log records past ``step`` (written after the checkpoint resumed from)."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        if isinstance(record, dict) and int(record.get('step', 0)) <= step:
            kept.append(line)
    tmp = log_path.with_name(log_path.name + '.tmp')
    tmp.write_text(''.join(line + '\n' for line in kept))
    os.replace(tmp, log_path)


def train(task, sampler, val_samples: List, out: Path, work: Path, steps: int, batch: int,
          lr: float = 1e-3, resume: bool = False, val_every: int = 250,
          checkpoint_every_s: float = 120.0, minutes: Optional[float] = None,
          reference: Optional[dict] = None, quiet: bool = False, info: Optional[dict] = None,
          stop_after: Optional[int] = None, stop=None, label: str = '') -> dict:
    """
    Run (or resume) a training; return a summary dict.

    ``minutes`` (wall clock) or ``stop_after`` (steps in this invocation) stop early, cleanly, with
    a checkpoint to resume. So does a signal (``stop``, a
    :class:`sgdfuse_ros.cli.guard.StopRequest`): at the next step boundary the checkpoint is
    written (and ``out``, with the best weights so far, when a step was done), and the summary
    says ``interrupted``; a second signal abandons the step in progress (undone: the checkpoint
    is that of the step before) or the validation in progress (that step is not scored). A
    resumed run says from which step and continues the log. A failed write (a full disk) raises
    ``OSError`` naming the file; the previous checkpoint stays
    as it was.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / CKPT_NAME
    log_path = work / 'log.jsonl'
    model = task.model
    device = task.device
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optim,
        lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1))))
    step, best_score, best_state, best_metrics = 0, -float('inf'), None, None
    if resume and ckpt_path.is_file():
        try:
            ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
            model.load_state_dict(ckpt['model'])
            optim.load_state_dict(ckpt['optimizer'])
            schedule.load_state_dict(ckpt['scheduler'])
            sampler.set_state(ckpt['sampler_rng'])
            torch.set_rng_state(ckpt['torch_rng'])
            step = int(ckpt['step'])
            best_score = float(ckpt['best_score'])
            best_state = ckpt.get('best_state')
            best_metrics = ckpt.get('best_metrics')
            reference = ckpt.get('reference') or reference
        except Exception as err:
            raise ConfigError(f'cannot resume from {ckpt_path} ({error_line(err, 160)})') from None
        # said even when quiet: where the work goes on from is not progress chatter
        print(f'{label}resuming from step {step} of {steps} ({ckpt_path})', file=sys.stderr)
        _keep_log_until(log_path, step)
    elif resume and not quiet:
        print(f'{label}no checkpoint at {ckpt_path}: starting from step 0', file=sys.stderr)
    if not (resume and step) and log_path.exists():
        log_path.unlink()
    log = _Log(log_path)

    def save_checkpoint():
        payload = {'model': model.state_dict(), 'optimizer': optim.state_dict(),
                   'scheduler': schedule.state_dict(), 'sampler_rng': sampler.state(),
                   'torch_rng': torch.get_rng_state(), 'step': step, 'best_score': best_score,
                   'best_state': best_state, 'best_metrics': best_metrics, 'reference': reference}
        log.flush()  # the log holds what the checkpoint holds
        save_atomically(payload, ckpt_path)

    def run_validation():
        nonlocal best_score, best_state, best_metrics
        if not val_samples:
            return None
        model.eval()
        with torch.inference_mode():
            if stop is None:
                metrics = validation_metrics(task.fuse, val_samples)
            else:  # a second signal abandons the validation: this step is then not scored
                metrics, abandoned = stop.abandonable(validation_metrics, task.fuse,
                                                      val_samples)
                if abandoned:
                    model.train()
                    return None
        model.train()
        score = selection_score(metrics, reference) if reference else 0.0
        record = {'step': step, 'val': metrics, 'score': score, 'time': time.time()}
        if step > 0 and score > best_score:  # step 0 (untrained) is logged, never shipped
            best_score, best_metrics = score, metrics
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            record['best'] = True
        log.write(json.dumps(record) + '\n')
        log.flush()
        return record

    if reference is None and val_samples and hasattr(task, 'reference_fuse'):
        with torch.inference_mode():
            reference = validation_metrics(task.reference_fuse, val_samples)
        log.write(json.dumps({'step': step, 'reference': reference}) + '\n')
    if step == 0 and val_samples:
        run_validation()

    model.train()
    progress = None if quiet else Progress(steps, unit='it', start=step, always=True,
                                           refresh_s=1.0, left='ETA')
    try:
        t_start = time.monotonic()
        last_ckpt = time.monotonic()
        smoothed = None
        first_loss = last_loss = None
        stopped_early = False
        interrupted = None
        step_at_start = step

        def forward_backward():
            data = torch.from_numpy(sampler.batch(batch)).to(device)
            terms = task.loss(data)
            loss = terms['total']
            if not torch.isfinite(loss):
                raise ConfigError(f'training diverged: the loss is {loss.item()} at step {step} '
                                  f'(lr {lr:g}); lower --lr or the loss weights')
            optim.zero_grad(set_to_none=True)
            loss.backward()
            return terms, loss

        while step < steps:
            if stop is not None and stop.requested:
                stopped_early, interrupted = True, stop.name
                break
            if stop_after is not None and step - step_at_start >= stop_after:
                stopped_early = True
                break
            if minutes is not None and time.monotonic() - t_start > minutes * 60.0:
                stopped_early = True
                break
            if stop is None:
                terms, loss = forward_backward()
            else:  # a second signal abandons this step: undone, the parameters untouched
                rng_before = (sampler.state(), torch.get_rng_state())
                done, abandoned = stop.abandonable(forward_backward)
                if abandoned:
                    sampler.set_state(rng_before[0])
                    torch.set_rng_state(rng_before[1])
                    optim.zero_grad(set_to_none=True)
                    stopped_early, interrupted = True, stop.name
                    break
                terms, loss = done
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            schedule.step()
            step += 1
            value = float(loss.item())
            first_loss = value if first_loss is None else first_loss
            last_loss = value
            smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
            if step % 10 == 0 or step == steps:
                values = {k: round(float(v.detach()), 6) for k, v in terms.items()}
                log.write(json.dumps({'step': step, 'lr': schedule.get_last_lr()[0], **values})
                          + '\n')
            if progress:
                progress.update(step - progress.count,
                                f'loss {smoothed:.4f} best {best_score:+.4f}')
            if val_every and step % val_every == 0:
                run_validation()
            if time.monotonic() - last_ckpt > checkpoint_every_s:
                save_checkpoint()
                last_ckpt = time.monotonic()
        if stop is not None and stop.requested and interrupted is None:
            interrupted = stop.name  # it came during the last step: that step is done, kept
        if val_every and step % val_every != 0 and not interrupted:
            run_validation()
        save_checkpoint()
        if progress:
            progress.update(step - progress.count,
                            f"loss {smoothed if smoothed is not None else float('nan'):.4f} "
                            f'best {best_score:+.4f}', force=True)
            progress.done()
        log.close()
        final_state = best_state if best_state is not None else model.state_dict()
        model.load_state_dict(final_state)
    except BaseException:  # a failed write, a bug: the error line starts on a line of its own
        if progress:
            progress.close()
        raise
    summary = {'steps': step, 'stopped_early': stopped_early, 'best_score': best_score,
               'best_metrics': best_metrics, 'reference': reference, 'first_loss': first_loss,
               'last_loss': last_loss, 'seconds': time.monotonic() - t_start,
               'interrupted': interrupted, 'wrote_out': step > step_at_start or not interrupted}
    if summary['wrote_out']:  # a signal before any new step leaves ``out`` as it was
        task.save(out, {**(info or {}), **{k: v for k, v in summary.items()
                                           if k not in ('seconds', 'interrupted', 'wrote_out')}})
    return summary
