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
The refiner (:mod:`sgdfuse_ros.fusion.refiner`) as ONNX: one denoiser call as a graph.

The K-step SDEdit/DDIM loop stays outside the graph (the same :meth:`RefinerNet.sample` the torch
path runs). ``backend: onnx`` builds :class:`OnnxDiffusionRefiner` (through
:func:`sgdfuse_ros.fusion.refiner.build_refiner`); ``sgdfuse export`` calls :func:`export_onnx`.
"""

from __future__ import annotations

import copy
from pathlib import Path
import tempfile

import numpy as np
import torch
from torch import nn

from .export import export_module
from .runtime import OnnxModule
from ..config import resolve_model_path
from ..fusion.refiner import DiffusionRefiner, KIND, RefinerNet
from ..fusion.tensors import image_tensor, prior_tensors
from ..fusion.weights import load_weights

ONNX_INPUTS = ('x_and_conditions', 'time_features', 'highpass')
ONNX_OUTPUTS = ('x0',)


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
    return export_module(graph, examples, path, ONNX_INPUTS, ONNX_OUTPUTS,
                         verify_sizes=((h, w), (256, 328)))


def export_onnx(config: dict, out_dir):
    """
    ``sgdfuse export`` hook: write the configured refiner's denoiser as ONNX.

    The graph goes to out_dir/refiner.onnx, verified against torch at two sizes. The K-step
    SDEdit/DDIM loop is not in the graph.
    """
    path = resolve_model_path(config['refiner.weights'], 'refiner.pt')
    model, _ = load_weights(path, KIND, RefinerNet.from_arch)
    return export_denoiser(model, Path(out_dir) / 'refiner.onnx')


class OnnxDiffusionRefiner(DiffusionRefiner):
    """
    ``backend: onnx``: the same sampler, each denoiser call run by onnxruntime.

    The graph is exported from the weights at configure time; padding, the time features and the
    DDIM updates stay outside the graph.
    """

    backend = 'onnx'

    def __init__(self, model: RefinerNet, steps: int, seed: int, config: dict, info: dict = None):
        super().__init__(model, steps, seed, 'cpu', info)
        self.model.net.channels_last = False
        self.model.net.to(memory_format=torch.contiguous_format)
        self._tmp = tempfile.TemporaryDirectory(prefix='sgdfuse_onnx_')
        path = export_denoiser(self.model, Path(self._tmp.name) / 'refiner.onnx')
        self.runner = OnnxModule.from_config(path, config)
        self._features = {}

    def _time_features(self, t: int) -> np.ndarray:
        if t not in self._features:
            with torch.no_grad():
                features = self.model.time_features(torch.full((1,), int(t)))
                self._features[t] = features.numpy().astype(np.float32)
        return self._features[t]

    @torch.inference_mode()
    def __call__(self, thermal, visible_y, prior, first):
        model = self.model
        ir, vis, fs = (image_tensor(a, 'cpu') for a in (thermal, visible_y, first))
        t, b = prior_tensors(prior, thermal.shape, 'cpu')
        cond, hp, size = model.conditions(ir, vis, t, b, fs)
        inputs = np.empty((1, 6) + tuple(cond.shape[-2:]), np.float32)
        inputs[:, 1:] = cond.numpy()
        hp_np = np.ascontiguousarray(hp.numpy())

        def denoise(x, step_t):
            inputs[:, 0:1] = x.numpy()
            return torch.from_numpy(np.array(self.runner(inputs, self._time_features(step_t),
                                                         hp_np)))

        out = model.sample(cond, size, self.steps, self.noise(thermal.shape).cpu(), denoise)
        return out[0, 0].numpy().astype(np.float32)

    def close(self):
        super().close()
        self.runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
