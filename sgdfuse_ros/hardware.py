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
The machine: which device exists, how many physical cores there are, how thread pools wait.

The one home of these facts for the pipeline (:mod:`sgdfuse_ros.pipeline`) and ONNX Runtime
(:mod:`sgdfuse_ros.onnx`); it imports nothing of the package but its errors.

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
  (:class:`~sgdfuse_ros.pipeline.fusion_pipeline.ThreadTuner`: between 1 and ``threads``,
  probing the other counts now and then).
- ``library``: the libraries' own defaults (torch spins, one thread per core; ``threads`` > 0
  still sets the count): the behaviour before this parameter existed, kept for comparison.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import sys
from typing import Dict, List

from .errors import ConfigError

log = logging.getLogger('sgdfuse_ros')

THREAD_POLICIES = ('adaptive', 'fixed', 'library')
# what prepare_process puts in the environment (unless the user set them already)
QUIET_WAIT_ENV = {'OMP_WAIT_POLICY': 'PASSIVE', 'KMP_BLOCKTIME': '0'}


def cuda_available() -> bool:
    """Whether torch sees a usable CUDA device (a broken driver install counts as none)."""
    try:
        import torch  # optional here; also loads the CUDA libraries ORT's providers reuse
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install: treat as no GPU
        return False


_FALLBACK_SAID = False  # the cuda -> CPU fallback was logged in this process


def resolve_device(config: dict) -> str:
    """'cpu' or 'cuda' for ``config['device']`` (auto, cpu, cuda) and ``device_fallback``."""
    wanted = config['device']
    if wanted == 'cpu':
        return 'cpu'
    if cuda_available():
        return 'cuda'
    if wanted == 'auto':
        return 'cpu'
    if config.get('device_fallback', True):
        global _FALLBACK_SAID
        if not _FALLBACK_SAID:  # once per process: every stage asks, the answer is the same
            _FALLBACK_SAID = True
            log.warning('device=cuda requested but no CUDA device is usable: falling back to '
                        'CPU')
        return 'cpu'
    raise ConfigError('device=cuda requested but no CUDA device is usable '
                      '(set device: cpu, or device_fallback: true)')


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads not counted), at least 1."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else \
        (os.cpu_count() or 1)
    cores = set()
    try:
        physical = core = None
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            key = key.strip()
            if key == 'physical id':
                physical = value.strip()
            elif key == 'core id':
                core = value.strip()
            elif not key and core is not None:  # blank line ends one processor's block
                cores.add((physical, core))
                physical = core = None
        if core is not None:
            cores.add((physical, core))
    except OSError:
        pass
    count = len(cores) if cores else (os.cpu_count() or 1)
    return max(1, min(count, allowed))


def thread_candidates(threads: int, cores: int) -> List[int]:
    """
    Return the counts ``adaptive`` chooses from: 1, the middle and the most (threads or cores).

    ``[1]`` when there is only one core to use.
    """
    most = int(threads) if threads and threads > 0 else int(cores)
    most = max(1, most)
    return sorted({1, max(1, most // 2), most})


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


def wait_policy() -> str:
    """Return what :func:`prepare_process` found and did about OpenMP's wait policy."""
    return _PROCESS.get('omp_wait_policy', 'not set')
