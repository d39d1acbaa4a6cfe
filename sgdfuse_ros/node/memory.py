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
Give memory back after the pipeline was closed (``deactivate``, a pipeline rebuild).

Closing the pipeline drops the references to its models and ONNX Runtime sessions; this then
collects what is left in reference cycles, returns PyTorch's cached CUDA blocks to the driver
(``torch.cuda.empty_cache()``, only where CUDA was initialised) and asks glibc to hand freed
heap pages back to the system (``malloc_trim``), so the resident size drops where it can.
The libraries themselves (PyTorch alone is about 0.6 GB resident) stay loaded: a Python
process cannot unload them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from typing import Dict

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        except OSError:
            _LIBC = False
    return _LIBC


def malloc_trim() -> bool:
    """Return freed heap pages to the system (glibc only); True if it released something."""
    libc = _libc()
    trim = getattr(libc, 'malloc_trim', None) if libc else None
    if trim is None:
        return False
    return bool(trim(0))


def cuda_empty_cache() -> bool:
    """``torch.cuda.empty_cache()`` if torch is loaded and CUDA was initialised; True if run."""
    torch = sys.modules.get('torch')
    if torch is None:
        return False
    try:
        if not torch.cuda.is_initialized():
            return False
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    except Exception:  # a broken CUDA context: nothing more to free here
        return False
    return True


def release_memory() -> Dict[str, bool]:
    """Collect cycles, empty PyTorch's CUDA cache, trim the heap; says what ran."""
    gc.collect()
    return {'cuda_empty_cache': cuda_empty_cache(), 'malloc_trim': malloc_trim()}
