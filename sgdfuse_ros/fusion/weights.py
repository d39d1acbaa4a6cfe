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
Weights files of the learned stages: a plain state dict plus a small metadata dict.

    {"kind": "first_stage", "format": 1, "arch": {...hyper-parameters...},
     "state_dict": {...tensors...}, "info": {...training facts...}}

Loaded with ``torch.load(..., weights_only=True)``. Anything missing, corrupt or built for
another architecture is a one-line :class:`ConfigError` naming the file and what was expected.
The content is checked before anything is built from it: architecture sizes beyond
:data:`~sgdfuse_ros.config.ARCH_LIMITS` (a network that would allocate gigabytes) and non-finite
tensors (NaN or infinity, which would turn every fused frame into noise) are refused the same
way.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Optional
import warnings

import torch

from ..config import check_arch, tensor_problem
from ..errors import ConfigError, torch_file_problem

FORMAT = 1


def check_tensors(state, kind: str, path) -> None:
    """
    Refuse (one line naming the file) a state dict that is not weights.

    The one validator of weights files (the stages' weights, ``train --init``, SAM
    checkpoints): every entry a dense CPU tensor of real numbers (:func:`tensor_problem`), and
    no NaN or infinity in the floating-point ones.
    """
    if not isinstance(state, dict):
        raise ConfigError(f'{kind} weights {path}: state_dict is {type(state).__name__}')
    for name, tensor in state.items():
        problem = tensor_problem(tensor)
        if problem:
            raise ConfigError(f'{kind} weights {path}: {str(name)[:80]} {problem}')
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ConfigError(f'{kind} weights {path}: tensor {name} holds {bad} NaN or '
                              f'infinite value(s) (a diverged training run?)')


def save_weights(path, kind: str, arch: dict, model, info: Optional[dict] = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {'kind': kind, 'format': FORMAT, 'arch': dict(arch), 'state_dict': state,
               'info': dict(info or {})}
    save_atomically(payload, path)
    return path


def save_atomically(payload, path: Path) -> None:
    """
    ``torch.save`` whole or not at all: serialised in memory, written beside, fsynced, renamed.

    A failed write (a full disk) leaves the previous file as it was and no temporary file; it
    raises ``OSError`` naming the file.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    try:
        with open(tmp, 'wb') as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)
        raise


def load_weights(path, kind: str, build: Callable[[dict], 'object']):
    """Read ``path`` and return ``(model, payload)``; ``build(arch) -> nn.Module``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'{kind} weights not found: {path} (train them with `sgdfuse train '
                          f"{kind.replace('_', '-')}` or set {kind}.weights)")
    try:
        with warnings.catch_warnings():  # e.g. "Validating sparse tensor invariants"
            warnings.simplefilter('ignore')
            payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # corrupt, truncated, not a torch file, unsafe pickle
        raise ConfigError(f'{kind} weights {path} cannot be read: '
                          f'{torch_file_problem(err, path)}') from None
    if not isinstance(payload, dict) or 'state_dict' not in payload or 'arch' not in payload:
        raise ConfigError(f"{kind} weights {path}: expected a dict with 'kind', 'arch' and "
                          f"'state_dict' (format {FORMAT})")
    if payload.get('kind') != kind:
        raise ConfigError(f"{path} holds '{payload.get('kind')}' weights, expected '{kind}'")
    if payload.get('format') != FORMAT:
        raise ConfigError(f"{kind} weights {path}: format {payload.get('format')}, "
                          f'expected {FORMAT}')
    check_arch(payload['arch'], kind, path)
    check_tensors(payload['state_dict'], kind, path)
    try:
        model = build(dict(payload['arch']))
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f'{kind} weights {path}: unusable architecture '
                          f"{payload['arch']!r} ({err})") from None
    try:
        model.load_state_dict(payload['state_dict'], strict=True)
    except (RuntimeError, KeyError, TypeError) as err:
        detail = str(err).strip().splitlines()
        detail = ' '.join(line.strip() for line in detail[:3])[:200]
        raise ConfigError(f'{kind} weights {path} do not match the architecture '
                          f"{payload['arch']!r}: {detail}") from None
    model.eval()
    return model, payload
