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
Where and how ONNX Runtime runs: execution providers, session options, thread counts.

Execution providers are chosen by the config's ``device`` and by what this machine can really
use: TensorRT, then CUDA, then CPU (:func:`usable_providers`). A GPU provider is only requested
when onnxruntime lists it, a CUDA device is usable (``torch.cuda.is_available()``) and the
provider's shared library loads; so a machine without CUDA never sees ONNX Runtime's "failed to
load provider" errors. :func:`session_options` sets the intra-op threads (0 = the physical cores
this process may use, :func:`sgdfuse_ros.hardware.physical_cores`), one inter-op thread, and
workers that never spin.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import List, Optional, Sequence

import onnxruntime

from ..errors import ConfigError
from ..hardware import cuda_available, physical_cores

log = logging.getLogger('sgdfuse_ros')

CPU = 'CPUExecutionProvider'
CUDA = 'CUDAExecutionProvider'
TENSORRT = 'TensorrtExecutionProvider'
GPU_PROVIDERS = (TENSORRT, CUDA)
DYNAMIC_BLOCK_BASE = 4  # ONNX Runtime's session.dynamic_block_base (0 = static shares)


def _provider_library_loads(provider: str) -> bool:
    """Whether ONNX Runtime's shared library for ``provider`` and its dependencies load."""
    name = {CUDA: 'libonnxruntime_providers_cuda.so',
            TENSORRT: 'libonnxruntime_providers_tensorrt.so'}.get(provider)
    if name is None:
        return True
    capi = Path(onnxruntime.__file__).resolve().parent / 'capi'
    path = capi / name
    if not path.is_file():
        return False
    try:
        shared = capi / 'libonnxruntime_providers_shared.so'
        if shared.is_file():
            ctypes.CDLL(str(shared), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(str(path))
        return True
    except OSError:
        pass
    preload = getattr(onnxruntime, 'preload_dlls', None)  # CUDA/cuDNN from nvidia-* wheels
    if preload is None:
        return False
    try:
        preload()
        ctypes.CDLL(str(path))
        return True
    except Exception:
        return False


def usable_providers(device: str = 'auto', tensorrt: bool = True,
                     available: Optional[Sequence[str]] = None,
                     cuda_usable: Optional[bool] = None) -> List[str]:
    """
    Return the provider names to request, best first, always ending with the CPU provider.

    ``device``: ``cpu`` (CPU only) or ``auto``/``cuda`` (GPU providers where really usable).
    ``available`` and ``cuda_usable`` default to what this machine reports (tests pass them in).
    """
    if device not in ('auto', 'cpu', 'cuda'):
        raise ConfigError(f"unknown device '{device}' (auto, cpu or cuda)")
    if device == 'cpu':
        return [CPU]
    if available is None:
        available = onnxruntime.get_available_providers()
    wanted = [p for p in GPU_PROVIDERS if p in available and (tensorrt or p != TENSORRT)]
    if wanted:
        if cuda_usable is None:
            cuda_usable = cuda_available()
        if not cuda_usable:
            wanted = []
        else:
            wanted = [p for p in wanted if _provider_library_loads(p)]
    if device == 'cuda' and not wanted:
        log.warning('device=cuda: ONNX Runtime has no usable GPU provider here; running on CPU')
    return wanted + [CPU]


def session_options(threads: int = 0, allow_spinning: bool = False, dynamic_blocks: bool = True):
    """
    ONNX Runtime session options with the thread counts set on purpose.

    ``threads`` intra-op threads (0: the physical cores); one inter-op thread, sequential
    execution (the pipeline's graphs are chains); all graph optimisations. Spinning worker
    threads are off by default: between frames they would burn the cores that OpenCV and the
    other ROS nodes need, and a spinning worker stalls the others when a co-running process
    takes a core; turn on for a dedicated machine where the last milliseconds count. Without
    spinning, parallel loops are split dynamically (``session.dynamic_block_base``), so a worker
    that lost its core to another process delays the operator less (``dynamic_blocks``; off
    for ``thread_policy: library``, the behaviour before).
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads) if threads and threads > 0 else physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry('session.intra_op.allow_spinning',
                                     '1' if allow_spinning else '0')
    if dynamic_blocks and not allow_spinning and options.intra_op_num_threads > 1:
        # work is handed out in shrinking blocks as threads come free, instead of one equal
        # share each: a worker whose core is taken by another process then holds up less
        options.add_session_config_entry('session.dynamic_block_base', str(DYNAMIC_BLOCK_BASE))
    return options


def _provider_entries(providers: Sequence[str], trt_cache_dir: Optional[Path],
                      fp16: bool = False) -> list:
    """
    Return the providers as ``InferenceSession`` takes them, TensorRT's with its options.

    TensorRT builds its engines in float16 only with ``fp16`` (``tensorrt_fp16``), and keeps
    them in ``trt_cache_dir`` (one folder per precision, so neither reuses the other's engines).
    """
    entries: list = []
    for name in providers:
        if name == TENSORRT:
            options = {'trt_fp16_enable': bool(fp16)}
            if trt_cache_dir is not None and fp16:
                trt_cache_dir = Path(str(trt_cache_dir) + '_fp16')
            if trt_cache_dir is not None:
                Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                options.update(trt_engine_cache_enable=True,
                               trt_engine_cache_path=str(trt_cache_dir))
            entries.append((name, options))
        else:
            entries.append(name)
    return entries
