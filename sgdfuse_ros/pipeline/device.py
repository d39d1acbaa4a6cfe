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
Where networks run, with which engine and how many CPU threads: chosen at configure time.

A fusion node shares its cores with the detector it feeds, the camera drivers and the planner.
Multithreaded inference that spin-waits, or that splits every operator across all cores, stalls
whenever one core is taken: each parallel region waits for its slowest worker, and a worker that
spins while it waits burns the core the others need. So, per process (the thread pools of torch,
OpenMP, ONNX Runtime and OpenCV are process-wide), with ``thread_policy``:

- ``adaptive`` (default) and ``fixed``: workers never spin while waiting: OpenMP's
  ``OMP_WAIT_POLICY=PASSIVE`` (``KMP_BLOCKTIME=0`` for Intel's runtime), set in the environment
  before torch is first imported (:func:`prepare_process`; OpenMP reads it once, when torch
  loads it: a process that imported torch earlier keeps its wait policy, and the
  ``/diagnostics`` value ``omp wait policy`` says so); ONNX Runtime sessions are built with
  ``session.intra_op.allow_spinning = 0``; torch's inter-op pool is one thread. ``fixed`` uses
  ``threads`` threads (0 = the physical cores) for torch, ONNX Runtime and OpenCV;
  ``adaptive`` measures its own per-frame time and uses the count that is fastest now
  (:class:`ThreadTuner`: between 1 and ``threads``, probing the other counts now and then).
- ``library``: the libraries' own defaults (torch spins, one thread per core; ``threads`` > 0
  still sets the count): the behaviour before this parameter existed, kept for comparison.

``backend: auto`` (default) runs the networks on ONNX Runtime on the CPU (faster per thread than
torch for these small networks, and it degrades less under load) and on torch on CUDA
(:func:`resolve_backend`).
"""

from __future__ import annotations

from collections import deque
import logging
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import ConfigError
from ..hardware import physical_cores, thread_candidates

log = logging.getLogger('sgdfuse_ros')

THREAD_POLICIES = ('adaptive', 'fixed', 'library')
# what prepare_process puts in the environment (unless the user set them already)
QUIET_WAIT_ENV = {'OMP_WAIT_POLICY': 'PASSIVE', 'KMP_BLOCKTIME': '0'}


def onnx_available() -> bool:
    """Whether onnxruntime and onnx (the exporter's checker) can be imported."""
    import importlib.util
    return all(importlib.util.find_spec(name) is not None for name in ('onnxruntime', 'onnx'))


def resolve_backend(config: dict, device: str) -> str:
    """
    'torch' or 'onnx' for ``config['backend']`` (auto, torch, onnx) on ``device``.

    ``auto``: ONNX Runtime on the CPU when it is installed, torch on CUDA (torch's CUDA path
    needs no provider libraries beyond torch's own).
    """
    wanted = config.get('backend', 'torch')
    if wanted != 'auto':
        return wanted
    if device == 'cpu' and onnx_available():
        return 'onnx'
    return 'torch'


# --- the process's thread pools ------------------------------------------------------------------

_PROCESS: Dict[str, str] = {}  # what prepare_process found and did (reported in /diagnostics)


def prepare_process(policy: str, environ=None, modules=None) -> str:
    """
    Put the no-spin wait policy in the environment before torch (and its OpenMP) is loaded.

    Returns what happened, for ``/diagnostics``: ``PASSIVE`` (set now, or already loaded with
    it), ``ACTIVE (set by the user)``, ``library default`` or ``library default (torch was
    imported before the pipeline)``. :class:`FusionPipeline` calls it first thing, before its
    stages import torch (nothing else in the package imports torch at module level, so the
    node and the ``sgdfuse`` commands get there in time); a program that imports torch itself
    should call it before that, or set ``OMP_WAIT_POLICY=PASSIVE`` in its environment.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if policy not in THREAD_POLICIES:
        raise ConfigError(f"unknown thread_policy '{policy}' "
                          f"(one of {', '.join(THREAD_POLICIES)})")
    user = environ.get('OMP_WAIT_POLICY')
    if environ is os.environ and _PROCESS.get('omp_wait_policy', '').startswith('PASSIVE'):
        user = None  # we put it there, for an earlier pipeline of this process
    if policy == 'library' and environ is os.environ and 'torch' in modules and \
            _PROCESS.get('omp_wait_policy', '').startswith('PASSIVE'):
        state = 'PASSIVE (set for an earlier pipeline of this process)'
    elif policy == 'library':
        state = f'{user} (set by the user)' if user else 'library default'
    elif 'torch' in modules and _PROCESS.get('omp_wait_policy', '').startswith('PASSIVE'):
        state = _PROCESS['omp_wait_policy']  # we set it before torch was imported
    elif 'torch' in modules:
        state = f'{user} (set before torch was imported)' if user else \
            'library default (torch was imported before the pipeline)'
    else:
        for key, value in QUIET_WAIT_ENV.items():
            environ.setdefault(key, value)
        now = environ['OMP_WAIT_POLICY']
        state = 'PASSIVE' if now.upper() == 'PASSIVE' and not user else \
            f'{now} (set by the user)'
    if environ is os.environ:
        _PROCESS['omp_wait_policy'] = state
    return state


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch (if loaded), OpenCV and the ONNX Runtime modules."""
    if not threads or threads <= 0:
        return
    threads = int(threads)
    torch = sys.modules.get('torch')
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2 = sys.modules.get('cv2')
    if cv2 is not None:
        cv2.setNumThreads(threads)
    runtime = sys.modules.get('sgdfuse_ros.onnx.runtime')
    if runtime is not None:
        runtime.use_threads(threads)


def single_interop_thread() -> None:
    """One torch inter-op thread (the pipeline never runs two operators at once)."""
    torch = sys.modules.get('torch')
    if torch is None:
        return
    try:
        if torch.get_num_interop_threads() != 1:
            torch.set_num_interop_threads(1)
    except RuntimeError:  # already started by earlier work in this process: keep it
        pass


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
               'omp_wait_policy': _PROCESS.get('omp_wait_policy', 'not set')}
        if self.tuner is not None:
            tuned = self.tuner.stats()
            tuned.pop('threads')
            out.update(tuned)
        return out
