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
The fusion pipeline as one plain object.

The node, the bag replay, the benchmarks and the CLI all drive it the same way.

    pipeline = FusionPipeline.from_yaml("config/fusion.yaml")
    result = pipeline.process(thermal, visible)          # numpy arrays (+ optional encodings)
    cv2.imwrite("fused.png", result.fused_bgr)

Stages, in order, each timed (milliseconds in ``result.timings``): ``decode`` (thermal AGC,
visible encoding), ``register`` (thermal into the visible frame, both to the output size),
``prior`` (semantic prior), ``first_stage`` (fusion of luminances), ``refiner`` (few-step
diffusion, when enabled), ``colour`` (visible chroma restored).

Faults a frame survives (``result.recovered`` names them; the node counts them):

- the refiner raises: the first-stage result is published (``refiner_failed``);
- a stage runs out of memory (``torch.cuda.OutOfMemoryError``, or any out-of-memory error of
  torch, onnxruntime or numpy): the GPU cache is emptied (when the pipeline runs on CUDA) and
  the frame is retried once at lower cost as ``faults.oom_retry`` says -- without the refiner
  (``oom_no_refiner``) or at half the output size, upsampled back (``oom_half_resolution``);
  with ``none``, or when the retry runs out of memory too, the frame is skipped with a
  :class:`~sgdfuse_ros.errors.ResourceError` (the node counts it as dropped, out_of_memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import sys
import time
from typing import Dict, Optional

import cv2
import numpy as np

from . import stages
from .color import attenuate_chroma, merge_luma, split_luma
from .device import prepare_process, resolve_backend, single_interop_thread, ThreadPolicy
from .encodings import check_size, ThermalAGC, visible_to_bgr
from .registration import Registration
from ..config import check_model_file, load_config, resolve_model_path
from ..errors import error_line, InputError, ResourceError, SgdfuseError
from ..hardware import resolve_device
from ..prior.format import SemanticPrior

log = logging.getLogger('sgdfuse_ros')


@dataclass
class FusionResult:
    fused_bgr: np.ndarray          # uint8 HxWx3, the fused image in the visible camera's colours
    fused_y: np.ndarray            # uint8 HxW, its luminance
    prior: SemanticPrior           # the prior the stages used (labels, targets, boundaries)
    thermal: np.ndarray            # float32 HxW in [0, 1], registered thermal at output size
    visible: np.ndarray            # uint8, registered visible (BGR, or gray for mono cameras)
    first_stage_y: np.ndarray      # float32 HxW, the first stage's output (before the refiner)
    timings: Dict[str, float] = field(default_factory=dict)  # milliseconds per stage + total
    refined: bool = False          # the refiner ran and its output is the one published
    notes: list = field(default_factory=list)  # what went wrong but was survived
    recovered: list = field(default_factory=list)  # tags of those faults (RECOVERY_TAGS)

    @property
    def prior_source(self) -> str:
        return self.prior.source

    @property
    def labels(self) -> np.ndarray:
        return self.prior.labels


RECOVERY_TAGS = ('refiner_failed', 'oom_no_refiner', 'oom_half_resolution')
OOM_RETRIES = ('no_refiner', 'half_resolution', 'none')


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says memory ran out (CUDA, host, onnxruntime), without importing torch."""
    if isinstance(err, MemoryError):
        return True
    torch = sys.modules.get('torch')
    oom_type = getattr(getattr(torch, 'cuda', None), 'OutOfMemoryError', None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        needle in text for needle in ('out of memory', 'failed to allocate memory',
                                      "can't allocate memory"))


def check_weight_paths(cfg: dict) -> None:
    """
    Check the weights and checkpoint files that the stages in use name.

    They must exist, be regular files and be readable (one-line ConfigError otherwise).

    The SAM checkpoint is checked here only with ``prior.on_sam_error: error``; with
    ``fallback`` a bad checkpoint makes the SAM provider serve the thermal prior, loudly.
    """
    if cfg['first_stage.type'] == 'network':
        check_model_file(resolve_model_path(cfg['first_stage.weights'], 'first_stage.pt'),
                         'first_stage.weights', 'first-stage network weights (.pt)')
    if cfg['refiner.steps'] > 0:
        check_model_file(resolve_model_path(cfg['refiner.weights'], 'refiner.pt'),
                         'refiner.weights', 'refiner weights (.pt)')
    if (cfg['prior.source'] == 'sam' and cfg['prior.on_sam_error'] == 'error'
            and cfg['prior.sam.checkpoint']):
        check_model_file(cfg['prior.sam.checkpoint'], 'prior.sam.checkpoint',
                         f"a SAM {cfg['prior.sam.model_type']} checkpoint (.pth)")


class FusionPipeline:

    def __init__(self, config: Optional[dict] = None):
        self.config = dict(config) if config is not None else load_config()
        cfg = self.config
        check_weight_paths(cfg)
        # before anything imports torch: its OpenMP reads the wait policy once, when it loads
        prepare_process(cfg.get('thread_policy', 'adaptive'))
        self.device = resolve_device(cfg) if stages.needs_torch(cfg) else 'cpu'
        cfg['backend'] = resolve_backend(cfg, self.device)
        self.threads = ThreadPolicy(cfg.get('thread_policy', 'adaptive'), cfg['threads'],
                                    self.device)
        if stages.needs_torch(cfg) and self.threads.policy != 'library':
            single_interop_thread()
        self.threads.before_frame()  # the stages are built with the count they start with
        self.max_pixels = cfg['limits.max_input_pixels']
        self.oom_retry = cfg.get('faults.oom_retry', 'no_refiner')
        self.agc = ThermalAGC.from_config(cfg)
        self.registration = Registration.from_config(cfg)
        self.prior_source = stages.build_prior_source(cfg, self.device)
        self.first_stage = stages.build_first_stage(cfg, self.device)
        self.refiner = stages.build_refiner(cfg, self.device)
        self.refiner_failures = 0
        self.oom_retries = 0   # frames saved by the out-of-memory retry
        self.oom_skipped = 0   # frames skipped because the retry ran out of memory too (or none)
        self.frames = 0
        log.info('fusion pipeline: prior=%s first_stage=%s refiner_steps=%d device=%s',
                 cfg['prior.source'], cfg['first_stage.type'], cfg['refiner.steps'], self.device)

    @classmethod
    def from_yaml(cls, path=None, overrides: Optional[dict] = None) -> 'FusionPipeline':
        return cls(load_config(path, overrides))

    def describe(self) -> dict:
        return {'device': self.device, 'prior': self.config['prior.source'],
                'first_stage': self.config['first_stage.type'],
                'refiner_steps': self.config['refiner.steps'],
                'backend': self.config['backend'], 'threads': self.threads.count,
                'thread_policy': self.threads.policy}

    def compute_stats(self) -> dict:
        """Device, backend and the thread policy's state (for ``/diagnostics``)."""
        return dict(self.threads.stats(), device=self.device, backend=self.config['backend'])

    def process(self, thermal: np.ndarray, visible: np.ndarray,
                thermal_encoding: Optional[str] = None, visible_encoding: Optional[str] = None,
                prior: Optional[SemanticPrior] = None) -> FusionResult:
        """Fuse one registered-or-registrable pair. Raises InputError for frames it cannot use."""
        if not isinstance(thermal, np.ndarray) or not isinstance(visible, np.ndarray):
            raise InputError('thermal and visible frames must be numpy arrays')
        timings: Dict[str, float] = {}
        t0 = tick = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            timings[name] = (now - tick) * 1000.0
            tick = now

        check_size(thermal, 'thermal', self.max_pixels)
        check_size(visible, 'visible', self.max_pixels)
        self.threads.before_frame()
        ir = self.agc(thermal, thermal_encoding)
        vis, _ = visible_to_bgr(visible, visible_encoding)
        lap('decode')

        ir = self.registration.thermal(ir, vis.shape)
        vis = self.registration.visible(vis)
        vis_y, chroma = split_luma(vis)
        outside = self.registration.valid_mask()
        if outside is not None:  # where the thermal camera sees nothing, fuse visible with itself
            ir = np.where(outside, ir, vis_y)
        lap('register')

        state: dict = {'prior': prior}
        oom = None
        try:
            fused, refined, notes, recovered = self._stages(ir, vis_y, vis, state, lap)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            oom = f"{error_line(err, 160)} in {state.get('stage', 'a stage')}"
        if oom is not None:  # outside the except block: the traceback's tensors are gone
            fused, refined, notes, recovered = self._after_out_of_memory(oom, ir, vis_y, vis,
                                                                         state, lap)
        prior, first = state['prior'], state['first']

        fused_bgr, fused_y = merge_luma(fused, attenuate_chroma(chroma, vis_y, fused))
        lap('colour')
        timings['total'] = (time.perf_counter() - t0) * 1000.0
        self.frames += 1
        if not recovered:  # a retried frame's time says nothing about the thread count
            self.threads.after_frame(timings['total'], fused_y.size)
        return FusionResult(fused_bgr, fused_y, prior, ir, vis, first, timings, refined, notes,
                            recovered)

    def _stages(self, ir, vis_y, vis, state: dict, lap, refine: bool = True):
        """Prior, first stage, refiner; ``state`` keeps what is done (prior, first, stage)."""
        if state.get('prior') is None:
            state['stage'] = 'prior'
            state['prior'] = self.prior_source(ir, vis_y, vis)
        prior = state['prior'] = state['prior'].resized(ir.shape)
        lap('prior')

        state['stage'] = 'first_stage'
        first = state['first'] = self.first_stage(ir, vis_y, prior)
        lap('first_stage')

        fused, refined, notes, recovered = first, False, [], []
        if refine and self.refiner is not None:
            state['stage'] = 'refiner'
            try:
                fused = self.refiner(ir, vis_y, prior, first)
                refined = True
            except SgdfuseError:
                raise
            except Exception as err:  # a failing refiner must not cost the frame
                if is_out_of_memory(err):
                    raise  # faults.oom_retry decides
                self.refiner_failures += 1
                notes.append(f'refiner failed ({type(err).__name__}: {err}); first stage used')
                recovered.append('refiner_failed')
                log.warning('refiner failed, publishing the first-stage result: %s', err)
                fused = first
            lap('refiner')
        state['stage'] = 'done'
        return fused, refined, notes, recovered

    def _after_out_of_memory(self, what: str, ir, vis_y, vis, state: dict, lap):
        """One retry at lower cost (``faults.oom_retry``), or ResourceError."""
        self.release_memory()
        mode = self.oom_retry
        if mode == 'none':
            self.oom_skipped += 1
            raise ResourceError(f'out of memory ({what}); frame skipped (faults.oom_retry=none)')
        note = f"out of memory ({what}); retried {mode.replace('_', ' ')}"
        oom = None
        try:
            if mode == 'no_refiner':
                if state.get('stage') == 'refiner':  # the first stage's result is at hand
                    fused, refined, notes, recovered = state['first'], False, [], []
                else:
                    fused, refined, notes, recovered = self._stages(ir, vis_y, vis, state, lap,
                                                                    refine=False)
            else:
                fused, refined, notes, recovered = self._half_resolution(ir, vis_y, vis, state,
                                                                         lap)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            oom = error_line(err, 160)
        if oom is not None:
            self.release_memory()
            self.oom_skipped += 1
            raise ResourceError(f'out of memory ({what}), and again on the {mode} retry '
                                f'({oom}); frame skipped')
        self.oom_retries += 1
        log.warning('%s', note)
        return fused, refined, [note] + notes, [f'oom_{mode}'] + recovered

    def _half_resolution(self, ir, vis_y, vis, state: dict, lap):
        h, w = ir.shape
        half = (max(1, w // 2), max(1, h // 2))
        small = {'prior': None if state.get('prior') is None
                 else state['prior'].resized((half[1], half[0]))}
        ir_s = cv2.resize(ir, half, interpolation=cv2.INTER_AREA)
        vis_y_s = cv2.resize(vis_y, half, interpolation=cv2.INTER_AREA)
        vis_s = cv2.resize(vis, half, interpolation=cv2.INTER_AREA)
        fused, refined, notes, recovered = self._stages(ir_s, vis_y_s, vis_s, small, lap)
        state['prior'] = small['prior'].resized((h, w))
        state['first'] = cv2.resize(small['first'], (w, h), interpolation=cv2.INTER_LINEAR)
        return (cv2.resize(fused, (w, h), interpolation=cv2.INTER_LINEAR), refined, notes,
                recovered)

    def release_memory(self) -> None:
        """Return cached GPU memory to the driver (after an out-of-memory error)."""
        torch = sys.modules.get('torch')
        if torch is not None and str(self.device).startswith('cuda'):
            try:
                torch.cuda.empty_cache()
            except Exception as err:  # a broken CUDA context: the retry will say more
                log.warning('torch.cuda.empty_cache() failed: %s', error_line(err, 160))

    def prior_stats(self) -> dict:
        """
        Return the prior source's counters (SAM runs, failures, timeouts, last error).

        Only if it keeps any (the SAM provider does); {} otherwise.
        """
        stats = getattr(self.prior_source, 'stats', None)
        try:
            return dict(stats()) if callable(stats) else {}
        except Exception as err:  # diagnostics must never take the node down
            return {'last_error': f'prior stats unavailable: {error_line(err, 160)}'}

    def close(self) -> None:
        """Free models and stop workers (the node calls this on deactivate)."""
        for part in (self.prior_source, self.first_stage, self.refiner):
            closer = getattr(part, 'close', None)
            if closer is not None:
                closer()
        self.prior_source = self.first_stage = self.refiner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
