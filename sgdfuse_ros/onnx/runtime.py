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
Runs exported ONNX files: :class:`OnnxModule`, called like the torch module it came from.

Providers and session options come from :mod:`sgdfuse_ros.onnx.providers` (importable here too);
intra-op threads from the config's ``threads`` and ``thread_policy`` (``adaptive``: one session
per candidate count, switched by :func:`use_threads`). Inputs are bound without copies (IO
binding) and output buffers are allocated once per input geometry. Writing such files:
:mod:`sgdfuse_ros.onnx.export`.

A learned stage that runs on ONNX Runtime sets ``backend = "onnx"`` on its plug-in object; the
benchmarks read that attribute to tell which stages honour ``backend: onnx``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import threading
from typing import Dict, List, Optional, Sequence, Tuple, Union
import weakref

import numpy as np
import onnxruntime

from .providers import (_provider_entries, GPU_PROVIDERS, session_options, TENSORRT,
                        usable_providers)
from ..errors import ConfigError, first_line, InputError
from ..hardware import physical_cores, resolve_device, thread_candidates

log = logging.getLogger('sgdfuse_ros')

# ONNX tensor element types that the pipeline's networks use
_NUMPY_OF_ONNX = {'tensor(float)': np.float32, 'tensor(float16)': np.float16,
                  'tensor(double)': np.float64, 'tensor(int64)': np.int64,
                  'tensor(int32)': np.int32, 'tensor(uint8)': np.uint8,
                  'tensor(bool)': np.bool_}


# --- running ONNX files --------------------------------------------------------------------------

_LIVE: 'weakref.WeakSet[OnnxModule]' = weakref.WeakSet()  # modules use_threads() reaches


def use_threads(threads: int) -> None:
    """Run every live :class:`OnnxModule` of this process with ``threads`` intra-op threads."""
    for module in list(_LIVE):
        module.use_threads(threads)


class _Run:
    """One session with its IO binding and output buffers (per intra-op thread count)."""

    def __init__(self, session):
        self.session = session
        self.binding = session.io_binding()
        self.geometry: Optional[Tuple] = None
        self.out_arrays: Optional[List[np.ndarray]] = None  # CPU: numpy buffers ORT writes into
        self.out_values: Optional[list] = None              # OrtValues bound as outputs
        self.in_values: Dict[str, object] = {}              # CUDA: device copies of the inputs
        self.plain: set = set()  # geometries whose output shapes are not fixed: session.run


class OnnxModule:
    """
    One ONNX file in one ONNX Runtime session; call it like the torch module it came from.

    ``module(a, b)`` or ``module(ir=a, vis=b)`` with numpy arrays; returns one numpy array (one
    output) or a tuple. Inputs are converted to the file's element type when needed and bound
    without copies on the CPU. Output buffers are allocated once per input geometry when
    ``reuse_outputs`` is true: the returned arrays are then overwritten by the next call, so the
    caller must copy what it keeps. Not thread-safe by design of IO binding: calls are serialised
    by a lock.

    The intra-op thread count of a session is fixed when it is built, so on the CPU the module
    keeps one session per count it was asked for: ``extra_threads`` are built at once (the
    ``adaptive`` thread policy's candidates, so that switching costs nothing at run time), any
    other count on first use; :meth:`use_threads` (or the module function :func:`use_threads`,
    for every module of the process) picks the one the next calls run on. Workers never spin
    unless ``allow_spinning``.
    """

    def __init__(self, path: Union[str, os.PathLike], device: str = 'auto', threads: int = 0,
                 providers: Optional[Sequence[str]] = None, allow_spinning: bool = False,
                 reuse_outputs: bool = False, tensorrt: bool = True,
                 trt_cache_dir: Optional[Union[str, os.PathLike]] = None,
                 extra_threads: Sequence[int] = (), dynamic_blocks: bool = True,
                 trt_fp16: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f'ONNX file not found: {self.path} (write it with `sgdfuse export`)')
        requested = list(providers) if providers is not None else \
            usable_providers(device, tensorrt=tensorrt)
        if trt_cache_dir is None and TENSORRT in requested:
            trt_cache_dir = self.path.parent / 'trt_cache'
        self._provider_entries = _provider_entries(requested, trt_cache_dir, trt_fp16)
        self.allow_spinning = bool(allow_spinning)
        self.dynamic_blocks = bool(dynamic_blocks)
        self._runs: Dict[int, _Run] = {}
        count = int(threads) if threads and threads > 0 else physical_cores()
        self._active = self._open(count)
        session = self._active.session
        self.providers: List[str] = session.get_providers()
        self.device = 'cuda' if self.providers[0] in GPU_PROVIDERS else 'cpu'
        self.threads = count
        self.inputs = session.get_inputs()
        self.outputs = session.get_outputs()
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]
        self._input_dtypes = [np.dtype(_NUMPY_OF_ONNX.get(i.type, np.float32))
                              for i in self.inputs]
        self.reuse_outputs = bool(reuse_outputs)
        self._lock = threading.Lock()
        if self.device == 'cpu':
            for extra in extra_threads:
                if int(extra) >= 1:
                    self._run_for(int(extra))
        _LIVE.add(self)
        log.info('onnx: %s on %s, %d intra-op threads%s', self.path.name,
                 ', '.join(self.providers), self.threads,
                 f' (also ready: {sorted(set(self._runs) - {count})})'
                 if len(self._runs) > 1 else '')

    def _open(self, threads: int) -> _Run:
        options = session_options(threads, self.allow_spinning, self.dynamic_blocks)
        try:
            session = onnxruntime.InferenceSession(str(self.path), options,
                                                   providers=self._provider_entries)
        except Exception as err:  # corrupt file, unsupported opset, ...
            first = first_line(err, 200, type(err).__name__)
            raise ConfigError(f'ONNX file {self.path} cannot be loaded ({first})') from None
        run = self._runs[threads] = _Run(session)
        return run

    def _run_for(self, threads: int) -> _Run:
        run = self._runs.get(threads)
        return run if run is not None else self._open(threads)

    @property
    def session(self):
        return self._active.session

    @property
    def thread_counts(self) -> List[int]:
        """Return the intra-op thread counts that have a session."""
        return sorted(self._runs)

    def use_threads(self, threads: int) -> None:
        """Run the next calls with ``threads`` intra-op threads (no effect on a GPU provider)."""
        threads = int(threads)
        if self.device != 'cpu' or threads < 1 or threads == self.threads:
            return
        with self._lock:
            self._active = self._run_for(threads)
            self.threads = threads

    @classmethod
    def from_config(cls, path, config: dict, **kwargs) -> 'OnnxModule':
        """
        ``device``/``device_fallback``, ``threads``, ``thread_policy`` and ``tensorrt_fp16``.

        With ``thread_policy: adaptive`` the sessions of every candidate count are built at
        once (:func:`sgdfuse_ros.hardware.thread_candidates`).
        """
        device = resolve_device(config)  # raises ConfigError for cuda without a GPU, no fallback
        threads = config.get('threads', 0)
        kwargs.setdefault('dynamic_blocks', config.get('thread_policy') != 'library')
        kwargs.setdefault('trt_fp16', bool(config.get('tensorrt_fp16', False)))
        if config.get('thread_policy') == 'adaptive' and device == 'cpu':
            candidates = thread_candidates(threads, physical_cores())
            kwargs.setdefault('extra_threads', candidates)
            threads = candidates[-1]
        return cls(path, device=device, threads=threads, **kwargs)

    # -- calling ----------------------------------------------------------------------------------
    def _feeds(self, args, kwargs) -> List[np.ndarray]:
        if args and kwargs:
            raise TypeError('pass the inputs either by position or by name, not both')
        if kwargs:
            missing = [n for n in self.input_names if n not in kwargs]
            extra = [n for n in kwargs if n not in self.input_names]
            if missing or extra:
                raise InputError(f'{self.path.name}: inputs are {self.input_names}, '
                                 f'got {sorted(kwargs)}')
            args = [kwargs[n] for n in self.input_names]
        if len(args) != len(self.input_names):
            raise InputError(f'{self.path.name} takes {len(self.input_names)} inputs '
                             f"({', '.join(self.input_names)}), got {len(args)}")
        return [np.ascontiguousarray(a, dtype=d) for a, d in zip(args, self._input_dtypes)]

    def __call__(self, *args, **kwargs):
        feeds = self._feeds(args, kwargs)
        with self._lock:
            outputs = self._run(self._active, feeds)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _bind_inputs(self, run: _Run, feeds: List[np.ndarray]) -> None:
        for name, array in zip(self.input_names, feeds):
            if self.device == 'cpu':
                run.binding.bind_cpu_input(name, array)  # zero-copy view of the numpy array
                continue
            value = run.in_values.get(name)
            if value is not None and tuple(value.shape()) == array.shape:
                value.update_inplace(array)  # host -> device into the existing buffer
            else:
                value = onnxruntime.OrtValue.ortvalue_from_numpy(array, 'cuda', 0)
                run.in_values[name] = value
            run.binding.bind_ortvalue_input(name, value)

    def _allocate_outputs(self, run: _Run, shapes_dtypes) -> None:
        run.out_arrays, run.out_values = [], []
        for name, (shape, dtype) in zip(self.output_names, shapes_dtypes):
            if self.device == 'cpu':
                array = np.empty(shape, dtype)
                value = onnxruntime.OrtValue.ortvalue_from_numpy(array)  # wraps, no copy
                run.out_arrays.append(array)
            else:
                value = onnxruntime.OrtValue.ortvalue_from_shape_and_type(shape, dtype, 'cuda', 0)
            run.out_values.append(value)
            run.binding.bind_ortvalue_output(name, value)

    def _run(self, run: _Run, feeds: List[np.ndarray]) -> List[np.ndarray]:
        geometry = tuple((a.shape, a.dtype.str) for a in feeds)
        if geometry in run.plain:
            return run.session.run(self.output_names, dict(zip(self.input_names, feeds)))
        self._bind_inputs(run, feeds)
        if geometry != run.geometry:
            # first frame of this geometry: let ORT allocate, learn the output shapes
            run.binding.clear_binding_outputs()
            for name in self.output_names:
                run.binding.bind_output(name, self.device)
            run.session.run_with_iobinding(run.binding)
            first = run.binding.copy_outputs_to_cpu()
            run.binding.clear_binding_outputs()
            self._allocate_outputs(run, [(o.shape, o.dtype) for o in first])
            run.geometry = geometry
            return list(first)
        if not self.reuse_outputs and self.device == 'cpu':
            run.binding.clear_binding_outputs()
            self._allocate_outputs(run, [(a.shape, a.dtype) for a in run.out_arrays])
        try:
            run.session.run_with_iobinding(run.binding)
        except Exception as err:
            if 'shape' not in str(err).lower():
                raise
            # output shape depends on the data, not only on the input geometry
            run.plain.add(geometry)
            run.geometry = None
            run.binding.clear_binding_outputs()
            return run.session.run(self.output_names, dict(zip(self.input_names, feeds)))
        if self.device == 'cpu':
            return list(run.out_arrays)
        return [value.numpy() for value in run.out_values]
