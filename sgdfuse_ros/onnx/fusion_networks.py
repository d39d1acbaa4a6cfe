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
The fusion networks as ONNX graphs: the first stage and the refiner's denoiser.

The ONNX Runtime twins of :mod:`sgdfuse_ros.fusion.network` (:class:`OnnxFirstStage`) and
:mod:`sgdfuse_ros.fusion.refiner` (:class:`OnnxDiffusionRefiner`: one denoiser call as a graph;
the K-step SDEdit/DDIM loop stays outside it, the same :func:`~sgdfuse_ros.fusion.refiner.refine`
the torch path runs). Each graph is exported from the weights at configure time, verified
against torch (:func:`sgdfuse_ros.onnx.export.export_module`), and run by
:class:`~sgdfuse_ros.onnx.runtime.OnnxModule`.

Exporting and verifying a graph takes most of a second; a process that builds pipelines again
and again from the same weights files (a ``sgdfuse corpus`` worker, one pipeline per bag; a
node deactivated and activated) exports each file's graph once: :func:`exported_graph` keeps
the last few graphs' bytes by the SHA-256 of the weights file they came from (the model is
built from the file alone, so the same file gives the same graph).

``backend: onnx``: the stage registry (:mod:`sgdfuse_ros.pipeline.stages`) builds them through
:func:`load_onnx_first_stage` and :func:`load_onnx_refiner`; ``sgdfuse export`` calls
:func:`export_first_stage_onnx` and :func:`export_refiner_onnx`.
"""

from __future__ import annotations

from collections import OrderedDict
import copy
from pathlib import Path
import threading
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from .export import export_module
from .runtime import OnnxModule
from .scratch import scratch_dir
from ..config import first_stage_path, resolve_model_path
from ..fusion.network import FirstStageNet, KIND as FIRST_STAGE_KIND
from ..fusion.refiner import (DiffusionRefiner, KIND as REFINER_KIND, pack_planes, PAD_MULTIPLE,
                              refine, RefinerNet)
from ..fusion.weights import load_weights
from ..prior.format import prior_planes
from ..writing import file_digest


# --- graphs exported once per process ----------------------------------------------------------

#: how many exported graphs a process keeps (a first stage and a refiner, two configurations)
GRAPH_CACHE_SIZE = 4
_GRAPHS: 'OrderedDict[tuple, bytes]' = OrderedDict()
_GRAPHS_LOCK = threading.Lock()


def exported_graph(key: Optional[tuple], export: Callable[[Path], Path], path: Path) -> Path:
    """
    Write the graph ``export(path)`` writes to ``path``, exporting it only once per ``key``.

    ``key`` (the graph's kind and its weights file's digest) names the graph; None exports
    every time. The graph's bytes are kept in this process (at most :data:`GRAPH_CACHE_SIZE`).
    """
    path = Path(path)
    if key is None:
        return export(path)
    with _GRAPHS_LOCK:
        data = _GRAPHS.get(key)
        if data is not None:
            _GRAPHS.move_to_end(key)
    if data is None:
        export(path)
        data = path.read_bytes()
        with _GRAPHS_LOCK:
            _GRAPHS[key] = data
            while len(_GRAPHS) > GRAPH_CACHE_SIZE:
                _GRAPHS.popitem(last=False)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- the first stage -----------------------------------------------------------------------------

FIRST_STAGE_INPUTS = ('thermal', 'visible_y', 'targets', 'boundaries')
FIRST_STAGE_OUTPUTS = ('fused_y',)
ONNX_VERIFY_SIZES = ((512, 640), (256, 328))  # multiples of 8: padding happens outside the graph


def export_first_stage(model: FirstStageNet, path) -> Path:
    """
    Write ``model`` as ONNX, verified against torch.

    Inputs are (1, 1, H, W) each, H and W multiples of 8; the graph is checked against torch at two
    sizes by :func:`sgdfuse_ros.onnx.export.export_module`.
    """
    graph = copy.deepcopy(model).cpu().float().eval()
    graph.net.channels_last = False
    graph.net.to(memory_format=torch.contiguous_format)
    examples = tuple(torch.rand(1, 1, *ONNX_VERIFY_SIZES[0]) for _ in FIRST_STAGE_INPUTS)
    return export_module(graph, examples, path, FIRST_STAGE_INPUTS, FIRST_STAGE_OUTPUTS,
                         verify_sizes=ONNX_VERIFY_SIZES)


def export_first_stage_onnx(config: dict, out_dir):
    """``sgdfuse export`` hook: the configured first-stage weights -> out_dir/first_stage.onnx."""
    path = first_stage_path(config)
    model, _ = load_weights(path, FIRST_STAGE_KIND, FirstStageNet.from_arch)
    return export_first_stage(model, Path(out_dir) / 'first_stage.onnx')


def load_onnx_first_stage(path, config: dict) -> 'OnnxFirstStage':
    """Load the first-stage weights file ``path`` as an onnxruntime stage (``config``: threads)."""
    model, payload = load_weights(path, FIRST_STAGE_KIND, FirstStageNet.from_arch)
    return OnnxFirstStage(model, config, payload.get('info'),
                          graph_key=(FIRST_STAGE_KIND, file_digest(path)))


class OnnxFirstStage:
    """
    The same stage run by onnxruntime.

    The graph is exported from the weights at configure time (a second or two; once per process
    for a weights file, ``graph_key``: :func:`exported_graph`); padding to a multiple of 8 is
    done here, outside the graph.
    """

    name = 'network'
    backend = 'onnx'

    def __init__(self, model: FirstStageNet, config: dict, info: dict = None,
                 graph_key: Optional[tuple] = None):
        self.info = info or {}
        self.multiple = model.multiple
        self._tmp = scratch_dir()
        path = exported_graph(graph_key, lambda to: export_first_stage(model, to),
                              Path(self._tmp.name) / 'first_stage.onnx')
        self.runner = OnnxModule.from_config(path, config)

    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray, prior) -> np.ndarray:
        h, w = thermal.shape
        targets, boundaries = prior_planes(prior, (h, w))
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        planes = []
        for plane in (thermal, visible_y, targets, boundaries):
            plane = np.asarray(plane, np.float32)
            if ph or pw:
                plane = np.pad(plane, ((0, ph), (0, pw)), mode='edge')
            planes.append(plane[None, None])
        out = self.runner(*planes)
        return np.array(out[0, 0, :h, :w], dtype=np.float32)

    def close(self):
        self.runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# --- the refiner ---------------------------------------------------------------------------------

REFINER_INPUTS = ('x_and_conditions', 'time_features', 'highpass')
REFINER_OUTPUTS = ('x0',)


class DenoiserGraph(nn.Module):
    """
    One denoiser call (:meth:`RefinerNet.predict_x0`) with the per-frame parts precomputed.

    Inputs:
    ``x_and_conditions`` (1, 6, H, W) = [x_t, thermal, visible_y, targets, boundaries, first],
    ``time_features`` (1, 2*temb) = ``time_mlp(timestep_embedding(t))``,
    ``highpass`` (1, 2, H, W) = finest bands of thermal and visible; H, W multiples of 8.
    """

    def __init__(self, model: RefinerNet):
        super().__init__()
        self.model = model

    def forward(self, x_and_conditions, time_features, highpass_bands):
        return self.model.predict_x0(x_and_conditions, time_features, highpass_bands)


def export_denoiser(model: RefinerNet, path) -> Path:
    """Write one denoiser call of ``model`` as ONNX, verified against torch at two sizes."""
    model = copy.deepcopy(model).cpu().float().eval()
    model.net.channels_last = False
    model.net.to(memory_format=torch.contiguous_format)
    graph = DenoiserGraph(model).eval()
    h, w = 512, 640
    with torch.no_grad():
        features = model.time_features(torch.full((1,), model.t_start))
    examples = (torch.rand(1, 6, h, w), features, torch.rand(1, 2, h, w) - 0.5)
    return export_module(graph, examples, path, REFINER_INPUTS, REFINER_OUTPUTS,
                         verify_sizes=((h, w), (256, 328)))


def export_refiner_onnx(config: dict, out_dir):
    """
    ``sgdfuse export`` hook: write the configured refiner's denoiser as ONNX.

    The graph goes to out_dir/refiner.onnx, verified against torch at two sizes. The K-step
    SDEdit/DDIM loop is not in the graph.
    """
    path = resolve_model_path(config['refiner.weights'], 'refiner.pt')
    model, _ = load_weights(path, REFINER_KIND, RefinerNet.from_arch)
    return export_denoiser(model, Path(out_dir) / 'refiner.onnx')


def load_onnx_refiner(path, config: dict) -> 'OnnxDiffusionRefiner':
    """Load the refiner weights file ``path``, its denoiser run by onnxruntime."""
    model, payload = load_weights(path, REFINER_KIND, RefinerNet.from_arch)
    return OnnxDiffusionRefiner(model, config['refiner.steps'], config['refiner.seed'], config,
                                payload.get('info'), graph_key=(REFINER_KIND, file_digest(path)))


class OnnxDiffusionRefiner(DiffusionRefiner):
    """
    ``backend: onnx``: the same sampler, each denoiser call run by onnxruntime.

    The graph is exported from the weights at configure time (once per process for a weights
    file, ``graph_key``: :func:`exported_graph`); padding, the time features and the DDIM
    updates stay outside the graph.
    """

    backend = 'onnx'

    def __init__(self, model: RefinerNet, steps: int, seed: int, config: dict, info: dict = None,
                 graph_key: Optional[tuple] = None):
        super().__init__(model, steps, seed, 'cpu', info)
        self.model.net.channels_last = False
        self.model.net.to(memory_format=torch.contiguous_format)
        self._tmp = scratch_dir()
        path = exported_graph(graph_key, lambda to: export_denoiser(self.model, to),
                              Path(self._tmp.name) / 'refiner.onnx')
        self.runner = OnnxModule.from_config(path, config)
        self._features = {}
        self._noise_np = None  # (size, padded noise)

    def _time_features(self, t: int) -> np.ndarray:
        if t not in self._features:
            with torch.no_grad():
                features = self.model.time_features(torch.full((1,), int(t)))
                self._features[t] = features.numpy().astype(np.float32)
        return self._features[t]

    def _padded_noise(self, shape) -> np.ndarray:
        """Return the seeded noise (:meth:`noise`) as numpy, padded like the inputs (per size)."""
        shape = tuple(shape)
        if self._noise_np is None or self._noise_np[0] != shape:
            noise = self.noise(shape).cpu().numpy()[0, 0]
            self._noise_np = (shape, pack_planes((noise,), PAD_MULTIPLE))
        return self._noise_np[1]

    def __call__(self, thermal, visible_y, prior, first):
        """
        Compute what the torch refiner does (:meth:`RefinerNet.forward`), numpy around the graph.

        The conditions are laid out once per frame in the graph's input buffer (kept per size),
        the highpass bands come from OpenCV and the SDEdit/DDIM updates (the same
        :func:`~sgdfuse_ros.fusion.refiner.refine`) run on numpy arrays: torch's
        concatenation, padding, pooling and elementwise operators cost about 10 ms of CPU a
        frame at 640x512 here for the same values (float rounding aside).
        """
        model = self.model
        h, w = thermal.shape
        inputs, hp = self._pack_conditions(thermal, visible_y, prior, first)

        def denoise(x, step_t):
            inputs[:, 0:1] = x
            # a fresh output array per call (and none is used after the next call in any case)
            return self.runner(inputs, self._time_features(step_t), hp)

        x0 = refine(denoise, 2.0 * inputs[:, 5:6] - 1.0, self.steps, model.t_start,
                    model.schedule, self._padded_noise((h, w)))
        out = x0[0, 0, :h, :w] + 1.0  # RefinerNet.sample's crop, rescale and clamp
        out *= 0.5
        return np.clip(out, 0.0, 1.0, out=out)

    def close(self):
        super().close()
        self.runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
