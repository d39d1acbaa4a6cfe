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
Inference back ends for the learned stages: torch modules exported to ONNX, run by ONNX Runtime.

Two halves, both generic (they know nothing about a particular network):

- :func:`export_module` writes a ``torch.nn.Module`` as an ONNX file (opset 17, TorchScript
  exporter) whose image inputs and outputs have dynamic height and width, so one file serves every
  camera resolution. :func:`max_abs_difference` checks the file against the module.
- :class:`OnnxModule` runs such a file. Execution providers are chosen by the config's ``device``
  and by what this machine can really use: TensorRT, then CUDA, then CPU. A GPU provider is only
  requested when onnxruntime lists it, a CUDA device is usable (``torch.cuda.is_available()``)
  and the provider's shared library loads; so a machine without CUDA never sees ONNX Runtime's
  "failed to load provider" errors. Intra-op threads come from the config's ``threads`` (0 = the
  physical cores this process may use) and ``thread_policy`` (``adaptive``: one session per
  candidate count, switched by :func:`use_threads`); workers never spin. Inputs are bound
  without copies (IO binding) and output buffers are allocated once per input geometry.

A learned stage that runs on ONNX Runtime sets ``backend = "onnx"`` on its plug-in object; the
benchmarks read that attribute to tell which stages honour ``backend: onnx``.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
import threading
from typing import Dict, List, Optional, Sequence, Tuple, Union
import warnings
import weakref

import numpy as np

from ..errors import ConfigError, error_line, first_line, InputError

log = logging.getLogger('sgdfuse_ros')

OPSET = 17
CPU = 'CPUExecutionProvider'
CUDA = 'CUDAExecutionProvider'
TENSORRT = 'TensorrtExecutionProvider'
GPU_PROVIDERS = (TENSORRT, CUDA)
DYNAMIC_BLOCK_BASE = 4  # ONNX Runtime's session.dynamic_block_base (0 = static shares)

# ONNX tensor element types that the pipeline's networks use
_NUMPY_OF_ONNX = {'tensor(float)': np.float32, 'tensor(float16)': np.float16,
                  'tensor(double)': np.float64, 'tensor(int64)': np.int64,
                  'tensor(int32)': np.int32, 'tensor(uint8)': np.uint8,
                  'tensor(bool)': np.bool_}


# --- the machine ---------------------------------------------------------------------------------

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


def _torch_cuda_available() -> bool:
    try:
        import torch  # also loads the CUDA libraries torch ships, which ORT's providers reuse
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install: treat as no GPU
        return False


def _provider_library_loads(provider: str) -> bool:
    """Whether ONNX Runtime's shared library for ``provider`` and its dependencies load."""
    import onnxruntime

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
        import onnxruntime
        available = onnxruntime.get_available_providers()
    wanted = [p for p in GPU_PROVIDERS if p in available and (tensorrt or p != TENSORRT)]
    if wanted:
        if cuda_usable is None:
            cuda_usable = _torch_cuda_available()
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
    import onnxruntime

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


def _provider_entries(providers: Sequence[str], trt_cache_dir: Optional[Path]) -> list:
    entries: list = []
    for name in providers:
        if name == TENSORRT:
            options = {'trt_fp16_enable': False}
            if trt_cache_dir is not None:
                Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                options.update(trt_engine_cache_enable=True,
                               trt_engine_cache_path=str(trt_cache_dir))
            entries.append((name, options))
        else:
            entries.append(name)
    return entries


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
                 extra_threads: Sequence[int] = (), dynamic_blocks: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f'ONNX file not found: {self.path} (write it with `sgdfuse export`)')
        requested = list(providers) if providers is not None else \
            usable_providers(device, tensorrt=tensorrt)
        if trt_cache_dir is None and TENSORRT in requested:
            trt_cache_dir = self.path.parent / 'trt_cache'
        self._provider_entries = _provider_entries(requested, trt_cache_dir)
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
        import onnxruntime

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
        """The intra-op thread counts that have a session."""
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
        ``device``/``device_fallback``, ``threads`` and ``thread_policy`` from the config.

        With ``thread_policy: adaptive`` the sessions of every candidate count are built at
        once (:func:`sgdfuse_ros.pipeline.device.thread_candidates`).
        """
        from ..pipeline.device import resolve_device, thread_candidates

        device = resolve_device(config)  # raises ConfigError for cuda without a GPU, no fallback
        threads = config.get('threads', 0)
        kwargs.setdefault('dynamic_blocks', config.get('thread_policy') != 'library')
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
        import onnxruntime

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
        import onnxruntime

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


# --- exporting torch modules ---------------------------------------------------------------------

def export_module(module, example_inputs: Sequence, path: Union[str, os.PathLike],
                  input_names: Sequence[str], output_names: Sequence[str],
                  dynamic_batch: bool = False, opset: int = OPSET,
                  verify_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                  atol: float = 1e-3) -> Path:
    """
    Write ``module`` as ONNX with dynamic height/width on every 4-D input and output.

    ``example_inputs``: torch tensors of a typical size. The module is exported in eval mode and
    the file is checked with the ONNX checker, then **verified**: ONNX Runtime (CPU) and torch
    must agree within ``atol`` at each (height, width) of ``verify_sizes`` (4-D inputs resized
    to it, random values in [0, 1]). The default checks the example size and an odd size 37 rows
    and 53 columns larger: tracing records Python arithmetic on shapes (padding to a multiple,
    cropping back) as constants, so a graph can be right at the export size and wrong at every
    other; cameras come in any size. A network that needs sizes of a multiple must pad outside
    the graph and pass such sizes here. Raises ``ValueError`` naming the size that disagrees.

    Uses the TorchScript exporter (``dynamo=False``): it handles the pipeline's networks'
    data-independent control flow and needs no extra packages.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = tuple(example_inputs)
    axes: Dict[str, Dict[int, str]] = {}
    for name, tensor in zip(input_names, examples):
        if getattr(tensor, 'dim', lambda: 0)() == 4:
            axes[name] = {2: 'height', 3: 'width'}
            if dynamic_batch:
                axes[name][0] = 'batch'
    with torch.no_grad():
        sample_out = module.eval()(*examples)
    outs = sample_out if isinstance(sample_out, (tuple, list)) else (sample_out,)
    if len(outs) != len(output_names):
        raise ValueError(f'module returns {len(outs)} outputs, {len(output_names)} names given')
    for name, tensor in zip(output_names, outs):
        if tensor.dim() == 4:
            axes[name] = {2: 'height', 3: 'width'}
            if dynamic_batch:
                axes[name][0] = 'batch'
    tmp = path.with_suffix(path.suffix + '.tmp')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation/tracer notes
        torch.onnx.export(module, examples, str(tmp), dynamo=False, opset_version=opset,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=axes, do_constant_folding=True)
    onnx.checker.check_model(str(tmp))
    if verify_sizes is None:
        four_d = [t for t in examples if getattr(t, 'dim', lambda: 0)() == 4]
        if four_d:
            h, w = four_d[0].shape[-2:]
            verify_sizes = [(int(h), int(w)), (int(h) + 37, int(w) + 53)]
        else:
            verify_sizes = []
    try:
        if verify_sizes:
            runner = OnnxModule(tmp, device='cpu', threads=1)
            generator = torch.Generator().manual_seed(0)
            for h, w in verify_sizes:
                inputs = [torch.rand(tuple(t.shape[:-2]) + (h, w), generator=generator)
                          .to(device=t.device, dtype=t.dtype)
                          if getattr(t, 'dim', lambda: 0)() == 4 else t for t in examples]
                try:
                    error = max_abs_difference(module, runner, inputs)
                except Exception as err:  # shapes baked in: ORT or the comparison fails
                    raise ValueError(f'ONNX export of {type(module).__name__} fails at {w}x{h} '
                                     f'({error_line(err, 160)})') from None
                if not error <= atol:
                    raise ValueError(f'ONNX export of {type(module).__name__} disagrees with '
                                     f'torch at {w}x{h} (max abs difference {error:.3g} > '
                                     f'{atol:g}): shape arithmetic baked into the graph?')
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


def max_abs_difference(module, runner: OnnxModule, inputs: Sequence) -> float:
    """Largest absolute difference between ``module(*inputs)`` (torch) and the ONNX ``runner``."""
    import torch

    with torch.no_grad():
        expected = module.eval()(*inputs)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    got = runner(*[t.detach().cpu().numpy() for t in inputs])
    got = got if isinstance(got, tuple) else (got,)
    return max(float(np.max(np.abs(e.detach().cpu().numpy() - g))) for e, g in zip(expected, got))
