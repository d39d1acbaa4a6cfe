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

"""Choose where networks run, once, at configure time."""

from __future__ import annotations

import logging

from ..errors import ConfigError

log = logging.getLogger('sgdfuse_ros')


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


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
        log.warning('device=cuda requested but no CUDA device is usable: falling back to CPU')
        return 'cpu'
    raise ConfigError('device=cuda requested but no CUDA device is usable '
                      '(set device: cpu, or device_fallback: true)')


def set_threads(threads: int) -> None:
    if threads and threads > 0:
        import torch
        torch.set_num_threads(int(threads))
