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
The first stage (:mod:`sgdfuse_ros.fusion.network`) as ONNX: export and the onnxruntime plug-in.

``backend: onnx``: the stage registry (:mod:`sgdfuse_ros.pipeline.stages`) builds
:class:`OnnxFirstStage` through :func:`load_onnx_first_stage`; ``sgdfuse export`` calls
:func:`export_onnx`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from .export import export_module
from .runtime import OnnxModule
from .scratch import scratch_dir
from ..config import resolve_model_path
from ..fusion.network import FirstStageNet, KIND
from ..fusion.tensors import prior_planes
from ..fusion.weights import load_weights

ONNX_INPUTS = ('thermal', 'visible_y', 'targets', 'boundaries')
ONNX_OUTPUTS = ('fused_y',)
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
    examples = tuple(torch.rand(1, 1, *ONNX_VERIFY_SIZES[0]) for _ in ONNX_INPUTS)
    return export_module(graph, examples, path, ONNX_INPUTS, ONNX_OUTPUTS,
                         verify_sizes=ONNX_VERIFY_SIZES)


def export_onnx(config: dict, out_dir):
    """``sgdfuse export`` hook: the configured first-stage weights -> out_dir/first_stage.onnx."""
    path = resolve_model_path(config['first_stage.weights'], 'first_stage.pt')
    model, _ = load_weights(path, KIND, FirstStageNet.from_arch)
    return export_first_stage(model, Path(out_dir) / 'first_stage.onnx')


def load_onnx_first_stage(path, config: dict) -> 'OnnxFirstStage':
    """Load the first-stage weights file ``path`` as an onnxruntime stage (``config``: threads)."""
    model, payload = load_weights(path, KIND, FirstStageNet.from_arch)
    return OnnxFirstStage(model, config, payload.get('info'))


class OnnxFirstStage:
    """
    The same stage run by onnxruntime.

    The graph is exported from the weights at configure time (a second or two); padding to a
    multiple of 8 is done here, outside the graph.
    """

    name = 'network'
    backend = 'onnx'

    def __init__(self, model: FirstStageNet, config: dict, info: dict = None):
        self.info = info or {}
        self.multiple = model.multiple
        self._tmp = scratch_dir()
        path = export_first_stage(model, Path(self._tmp.name) / 'first_stage.onnx')
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
