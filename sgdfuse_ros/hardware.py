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
The machine: which device exists, how many physical cores this process may use.

The one home of these facts for the pipeline (:mod:`sgdfuse_ros.pipeline.device`) and ONNX
Runtime (:mod:`sgdfuse_ros.onnx`); it imports nothing of the package but its errors.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List

from .errors import ConfigError

log = logging.getLogger('sgdfuse_ros')


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
