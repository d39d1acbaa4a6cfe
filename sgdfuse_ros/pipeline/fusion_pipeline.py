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
The fusion pipeline as one plain object, and the fuse step every front end takes.

The node, the bag replay, ``sgdfuse adapt``, the benchmarks and the CLI all drive it the same way.

    pipeline = FusionPipeline.from_yaml("config/fusion.yaml")
    result = pipeline.process(thermal, visible)          # numpy arrays (+ optional encodings)
    cv2.imwrite("fused.png", result.fused_bgr)

Stages, in order, each timed (milliseconds in ``result.timings``): ``decode`` (thermal AGC,
visible encoding), ``register`` (thermal into the visible frame, both to the output size),
``prior`` (semantic prior), ``first_stage`` (fusion of luminances), ``refiner`` (few-step
diffusion, when enabled), ``colour`` (with ``background.*`` set, the quiet background for
detectors first, :class:`~sgdfuse_ros.pipeline.images.QuietBackground`; visible chroma restored,
with the thermal image's local warmth added in red: ``colour.warm_tint``,
:class:`~sgdfuse_ros.pipeline.warm_tint.WarmTint`).

Faults a frame survives (``result.recovered`` names them; the node counts them):

- the refiner raises: the first-stage result is published (``refiner_failed``);
- a stage runs out of memory (``torch.cuda.OutOfMemoryError``, or any out-of-memory error of
  torch, onnxruntime or numpy): the GPU cache is emptied (when the pipeline runs on CUDA) and
  the frame is retried once at lower cost as ``faults.oom_retry`` says -- without the refiner
  (``oom_no_refiner``) or at half the output size, upsampled back (``oom_half_resolution``);
  with ``none``, or when the retry runs out of memory too, the frame is skipped with a
  :class:`~sgdfuse_ros.errors.ResourceError` (the node counts it as dropped, out_of_memory).

The fuse step: the node (:mod:`sgdfuse_ros.node.core`), the bag replay
(:mod:`sgdfuse_ros.bag.replay`) and ``sgdfuse adapt`` (:mod:`sgdfuse_ros.training.bag_data`)
fuse a checked pair (:class:`sgdfuse_ros.intake.Pair`) through :func:`fuse_pair`, which returns
the result or a :class:`Failed` with one of :data:`FAILURES`; the node and the replay publish
through :func:`fusion_outputs`, so a replayed bag holds what the node would have sent.

``semantic/targets`` and ``semantic/detections`` carry the frame's scored warm targets
(:mod:`sgdfuse_ros.prior.targets`), not the fusion prior's every warm region; the detections'
ids come from a :class:`SemanticOutputs` the caller keeps for the run (its tracker,
:class:`sgdfuse_ros.prior.targets.TargetTracker`), so a target keeps its id while it is tracked.
``semantic/labels`` stays the prior's region map, renumbered every frame (targets first, by
area): its ids are not the detections' ids.

Threads: :class:`ThreadPolicy` applies ``thread_policy`` and ``threads`` around every frame
(:class:`ThreadTuner` picks the count that is fastest now; the process-wide part, OpenMP's wait
policy and the libraries' pools, is :mod:`sgdfuse_ros.hardware`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import logging
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from . import stages
from .images import (attenuate_chroma, check_size, merge_luma, QuietBackground, Registration,
                     split_luma, ThermalAGC, visible_to_bgr)
from .warm_tint import WarmTint
from ..config import check_model_file, first_stage_path, load_config, resolve_model_path
from ..errors import ConfigError, error_line, InputError, ResourceError, SgdfuseError
from ..hardware import (physical_cores, prepare_process, resolve_device, set_threads,
                        single_interop_thread, thread_candidates, THREAD_POLICIES, wait_policy)
from ..messages import (camera_info_msg, COMPRESSED_FORMATS, compressed_msg, COMPRESSED_SUFFIX,
                        detection_array_msg, DETECTIONS_TOPIC, FUSED_INFO_TOPIC, FUSED_TOPIC,
                        image_msg, LABELS_TOPIC, make_header, OVERLAY_TOPIC, scale_camera_info,
                        TARGETS_TOPIC)
from ..prior.format import overlay as draw_overlay, SemanticPrior
from ..prior.targets import TargetSelector, TargetTracker, WarmTargets

log = logging.getLogger('sgdfuse_ros')


@dataclass
class FusionResult:
    fused_bgr: np.ndarray          # uint8 HxWx3, the fused image: visible colours + warm tint
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
        check_model_file(first_stage_path(cfg), 'first_stage.weights' if cfg['first_stage.weights']
                         else 'first_stage.tuned_for', 'first-stage network weights (.pt)')
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
        cfg['backend'] = stages.resolve_backend(cfg, self.device)
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
        self.quiet = QuietBackground.from_config(cfg)
        self.tint = WarmTint.from_config(cfg)
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
        ir, vis, vis_y, chroma = self._inputs(thermal, visible, thermal_encoding,
                                              visible_encoding, lap)

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
        if self.quiet.active:  # background.*: the thermal image's quiet surroundings
            fused = self.quiet(fused, ir, prior.targets)

        chroma = attenuate_chroma(chroma, vis_y, fused)
        if self.tint.active:  # colour.warm_tint: the thermal image's local warmth, in red
            chroma = self.tint(chroma, ir, fused, self.registration.valid_mask())
        fused_bgr, fused_y = merge_luma(fused, chroma)
        lap('colour')
        timings['total'] = (time.perf_counter() - t0) * 1000.0
        self.frames += 1
        if not recovered:  # a retried frame's time says nothing about the thread count
            self.threads.after_frame(timings['total'], fused_y.size)
        return FusionResult(fused_bgr, fused_y, prior, ir, vis, first, timings, refined, notes,
                            recovered)

    def _inputs(self, thermal, visible, thermal_encoding, visible_encoding, lap):
        """AGC, visible decode and registration: (ir, vis, vis_y, chroma) at output size."""
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
        return ir, vis, vis_y, chroma

    def advance(self, thermal: np.ndarray, visible: np.ndarray,
                thermal_encoding: Optional[str] = None,
                visible_encoding: Optional[str] = None) -> np.ndarray:
        """
        Take a pair as :meth:`process` does up to the stages, and return its thermal input.

        What a frame leaves behind for the next ones (the AGC window, smoothed over time) is
        left as :meth:`process` leaves it; nothing is fused. A chunk of a bag
        (``sgdfuse corpus --chunk-frames``) runs the pairs before it through this, so that its
        first pair meets the state the whole bag's replay would have. Raises what
        :meth:`process` raises for frames it cannot use.
        """
        check_size(thermal, 'thermal', self.max_pixels)
        check_size(visible, 'visible', self.max_pixels)
        return self._inputs(thermal, visible, thermal_encoding, visible_encoding,
                            lambda name: None)[0]

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


# --- the fuse step ------------------------------------------------------------------------------

#: Detection2D hypothesis class of a warm target (the selection does not tell people from cars)
TARGET_CLASS = 'warm_target'


class SemanticOutputs:
    """
    The state the semantic outputs keep across frames: the target selection and the tracker.

    ``outputs(result)`` -> (:class:`~sgdfuse_ros.prior.targets.WarmTargets`, [id per box]).
    With ``prior.source: none`` (no prior) nothing is a target.
    """

    def __init__(self, selector: Optional[TargetSelector] = None,
                 tracker: Optional[TargetTracker] = None):
        self.selector = selector if selector is not None else TargetSelector()
        self.tracker = tracker if tracker is not None else TargetTracker()
        self.last: Tuple[Optional[WarmTargets], List[int]] = (None, [])  # the latest frame's
        self.paused = False  # frames are being skipped (see pause)

    def reset(self) -> None:
        self.tracker.reset()

    def pause(self) -> None:
        """
        Skip a frame (nobody wants its targets): the tracks end, the id counter goes on.

        A target seen again after a pause gets a new id: ids are never reused while the
        tracker lives, and none is carried across frames that were not looked at.
        """
        if not self.paused:  # once per pause
            self.tracker.forget_tracks()
            self.last, self.paused = (None, []), True

    def __call__(self, result) -> Tuple[WarmTargets, List[int]]:
        thermal = getattr(result, 'thermal', None)  # a result without one has no targets
        if thermal is None or getattr(result.prior, 'source', '') == 'none':
            found = WarmTargets(np.zeros(result.fused_y.shape, np.float32), [])
        else:
            found = self.selector(thermal)
        self.last = (found, self.tracker.update([t.box for t in found.boxes]))
        self.paused = False
        return self.last


def detections(found: WarmTargets, ids: List[int]) -> list:
    """``(box, score, id, class)`` per target, as :func:`detection_array_msg` reads them."""
    return [(t.box, t.score, str(i), TARGET_CLASS) for t, i in zip(found.boxes, ids)]


def fusion_outputs(result, stamp, frame_id: str, encoding: str = 'bgr8',
                   camera_info=None, overlay: bool = False,
                   undistorted: bool = False,
                   semantic: Optional[SemanticOutputs] = None, compressed: Iterable[str] = (),
                   jpeg_quality: int = 95, targets: bool = True) -> Dict[str, Any]:
    """
    Return the messages published for one fused pair, keyed by relative topic name.

    Every message carries ``stamp`` (the source pair's stamp, a Time message) and ``frame_id``
    (the frame the fused image lives in: the visible camera's). ``semantic``: the run's
    :class:`SemanticOutputs` (stable detection ids); None numbers this frame's targets 1..N.
    ``compressed`` names the image topics (of :data:`~sgdfuse_ros.messages.COMPRESSED_FORMATS`)
    whose image_transport compressed twin (``<topic>/compressed``) is also wanted: the same
    image, encoded. ``targets``: whether the warm targets are wanted (``semantic/targets``,
    ``semantic/detections`` and the targets' compressed twin); without them the selection does
    not run and ``semantic`` pauses (:meth:`SemanticOutputs.pause`).
    """
    header = make_header(stamp, frame_id)
    if targets:
        found, ids = (semantic if semantic is not None else SemanticOutputs())(result)
    elif semantic is not None:
        semantic.pause()
    fused = result.fused_bgr if encoding == 'bgr8' else result.fused_y
    height, width = result.fused_y.shape
    info = (scale_camera_info(camera_info, width, height, header, undistorted)
            if camera_info is not None
            else camera_info_msg(width, height, header))
    out = {
        FUSED_TOPIC: image_msg(fused, header, encoding),
        FUSED_INFO_TOPIC: info,
        LABELS_TOPIC: image_msg(result.prior.labels, header, 'mono16'),
    }
    targets_u8 = found.targets_u8() if targets else None
    if targets:
        out[TARGETS_TOPIC] = image_msg(targets_u8, header, 'mono8')
        out[DETECTIONS_TOPIC] = detection_array_msg(header, detections(found, ids))
    overlay_bgr = draw_overlay(result.fused_bgr, result.prior) if overlay else None
    if overlay:
        out[OVERLAY_TOPIC] = image_msg(overlay_bgr, header, 'bgr8')
    arrays = {FUSED_TOPIC: (fused, encoding), LABELS_TOPIC: (result.prior.labels, 'mono16'),
              TARGETS_TOPIC: (targets_u8, 'mono8'), OVERLAY_TOPIC: (overlay_bgr, 'bgr8')}
    for topic in compressed:
        array, raw_encoding = arrays[topic]
        if array is not None:
            out[topic + COMPRESSED_SUFFIX] = compressed_msg(
                array, header, COMPRESSED_FORMATS[topic], jpeg_quality, raw_encoding)
    return out


FAILURES = ('out_of_memory', 'pipeline', 'pipeline_bug')  # why a pair was not fused


@dataclass
class Failed:
    """A pair the pipeline could not fuse: the reason (one of :data:`FAILURES`) and one line."""

    reason: str
    text: str
    error: Exception


def fuse_pair(pipeline, pair) -> Union[FusionResult, Failed]:
    """
    Fuse ``pair`` (:class:`sgdfuse_ros.intake.Pair`): the pipeline's result, or why not.

    ``out_of_memory``: memory ran out even after the pipeline's retry; ``pipeline``: the
    pipeline refused the pair (a one-line :class:`SgdfuseError`); ``pipeline_bug``: anything else
    it raised (the caller survives it as it survives a bad frame).
    """
    thermal, visible = pair.thermal, pair.visible
    try:
        return pipeline.process(thermal.image, visible.image, thermal.encoding, visible.encoding)
    except ResourceError as err:
        return Failed('out_of_memory', str(err), err)
    except SgdfuseError as err:
        return Failed('pipeline', str(err), err)
    except Exception as err:  # a bug, or a library failing on odd data: costs only this pair
        return Failed('pipeline_bug', error_line(err, 200), err)


# --- the thread policy ---------------------------------------------------------------------------


class ThreadTuner:
    """
    Pick the thread count that makes frames fastest now, from measured per-frame costs.

    Pure logic, no clocks: the pipeline calls :meth:`observe` with each frame's cost (ms per
    megapixel, so a change of frame size is no change of load) and uses :attr:`count` for the
    next frame. It stays at one count, and every ``interval`` frames (or at once when the recent
    median cost moved by more than ``change`` from where it was at the last decision: the load
    changed) it tries another candidate for ``probe_frames`` frames, the first one not counted
    (pools waking up). It switches when the candidate's median is lower than the current one's
    recent median by more than ``margin``. A probe that confirms the current count doubles the
    interval (up to ``max_interval``), so on a steady machine probing costs well under 1 % of
    the frames; a switch, or a change of load, resets it to ``interval``.
    """

    def __init__(self, candidates: Sequence[int], start: Optional[int] = None,
                 interval: int = 30, max_interval: int = 480, probe_frames: int = 4,
                 window: int = 8, margin: float = 0.1, change: float = 0.3):
        self.candidates = sorted({int(c) for c in candidates if int(c) >= 1}) or [1]
        self.count = int(start) if start in self.candidates else self.candidates[-1]
        self.base_interval = int(interval)
        self.interval = int(interval)
        self.max_interval = int(max_interval)
        self.probe_frames = int(probe_frames)
        self.margin = float(margin)
        self.change = float(change)
        self.recent: deque = deque(maxlen=int(window))
        self.reference: Optional[float] = None  # recent median at the last decision
        self.until_probe = self.interval
        self.probing: Optional[int] = None       # candidate under test
        self.probe_costs: List[float] = []
        self.skip = 0
        self.next_probe = 0                       # round-robin over the other candidates
        self.previous = self.count                # the count before the probe
        self.switches = 0
        self.probes = 0
        self.last_costs: Dict[int, float] = {}   # median cost last measured per count

    @property
    def adaptive(self) -> bool:
        return len(self.candidates) > 1

    @staticmethod
    def _median(values) -> float:
        ordered = sorted(values)
        n = len(ordered)
        return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])

    def observe(self, cost: float) -> int:
        """Record the last frame's cost (made with :attr:`count`); returns the next count."""
        if not self.adaptive or not cost == cost or cost <= 0:  # NaN, zero: nothing learnt
            return self.count
        if self.probing is not None:
            if self.skip:
                self.skip -= 1
            else:
                self.probe_costs.append(cost)
            if len(self.probe_costs) >= self.probe_frames:
                self._decide()
            return self.count
        self.recent.append(cost)
        self.until_probe -= 1
        full = len(self.recent) == self.recent.maxlen
        if full:
            now = self._median(self.recent)
            if self.reference is None:
                self.reference = now
            elif abs(now - self.reference) > self.change * self.reference:
                self.interval = self.base_interval  # the load changed: look again now
                self.until_probe = 0
        if self.until_probe <= 0 and len(self.recent) >= self.probe_frames:
            self._start_probe()
        return self.count

    def _start_probe(self) -> None:
        others = [c for c in self.candidates if c != self.count]
        self.probing = others[self.next_probe % len(others)]
        self.next_probe += 1
        self.probe_costs = []
        self.skip = 1
        self.probes += 1
        self.previous = self.count
        self.count = self.probing

    def _decide(self) -> None:
        current = self._median(list(self.recent)[-max(self.probe_frames, 4):])
        trial = self._median(self.probe_costs)
        self.last_costs[self.previous] = round(current, 3)
        self.last_costs[self.probing] = round(trial, 3)
        if trial < current * (1.0 - self.margin):
            self.count = self.probing
            self.switches += 1
            self.interval = self.base_interval
            self.recent.clear()
            self.reference = None
            log.info('threads: %d -> %d (%.1f vs %.1f ms per megapixel)', self.previous,
                     self.count, trial, current)
        else:
            self.count = self.previous
            self.interval = min(self.max_interval, self.interval * 2)
            self.reference = self._median(self.recent)
        self.probing = None
        self.until_probe = self.interval

    def stats(self) -> dict:
        return {'threads': self.count, 'candidates': list(self.candidates),
                'switches': self.switches, 'probes': self.probes,
                'next_probe_in': None if not self.adaptive else max(0, self.until_probe),
                'ms_per_megapixel': {str(k): v for k, v in sorted(self.last_costs.items())}}


class ThreadPolicy:
    """
    The pipeline's ``thread_policy`` and ``threads``, applied to this process's thread pools.

    ``before_frame()`` sets the count the tuner chose (a no-op when unchanged);
    ``after_frame(ms, pixels)`` feeds it the frame's time. ``stats()`` is what ``/diagnostics``
    shows.
    """

    def __init__(self, policy: str, threads: int, device: str = 'cpu',
                 cores: Optional[int] = None, apply: Callable[[int], None] = set_threads):
        if policy not in THREAD_POLICIES:
            raise ConfigError(f"unknown thread_policy '{policy}'")
        self.policy = policy
        self.device = device
        self._apply = apply
        cores = physical_cores() if cores is None else int(cores)
        if policy == 'library':
            self.candidates = [int(threads)] if threads and threads > 0 else []
        elif policy == 'fixed' or device != 'cpu':
            # on a GPU the CPU threads only feed it: no tuning, the configured count
            self.candidates = [int(threads) if threads and threads > 0 else cores]
        else:
            self.candidates = thread_candidates(threads, cores)
        self.tuner = ThreadTuner(self.candidates) if len(self.candidates) > 1 else None
        self.applied: Optional[int] = None
        self.frames = 0

    @property
    def count(self) -> Optional[int]:
        """Threads the next frame runs with (None: the libraries' default)."""
        if self.tuner is not None:
            return self.tuner.count
        return self.candidates[0] if self.candidates else None

    def before_frame(self) -> None:
        count = self.count
        if count is not None and count != self.applied:
            self._apply(count)
            self.applied = count

    def after_frame(self, milliseconds: float, pixels: int) -> None:
        self.frames += 1
        if self.tuner is not None and pixels > 0:
            self.tuner.observe(milliseconds * 1e6 / float(pixels))

    def stats(self) -> dict:
        out = {'thread_policy': self.policy,
               'threads': self.applied if self.applied is not None else 'library default',
               'omp_wait_policy': wait_policy()}
        if self.tuner is not None:
            tuned = self.tuner.stats()
            tuned.pop('threads')
            out.update(tuned)
        return out
