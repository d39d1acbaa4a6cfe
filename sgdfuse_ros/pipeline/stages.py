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
Plug-in stages, chosen by name in the config.

Three kinds, each a callable over float32 images in [0, 1] at the output resolution:

- prior source: ``(thermal, visible_y, visible_bgr) -> SemanticPrior`` (and optional ``close()``)
- first stage: ``(thermal, visible_y, prior) -> fused_y``
- refiner: ``(thermal, visible_y, prior, first_y) -> refined_y``

Builders take ``(config, device)``. The engine is chosen here and only here: ``backend: onnx``
builds the :mod:`sgdfuse_ros.onnx` twin of a network stage, anything else the torch one (the
model modules never import :mod:`sgdfuse_ros.onnx`; it imports them).

``backend: auto`` (default) runs the networks on ONNX Runtime on the CPU (faster per thread than
torch for these small networks, and it degrades less under load) and on torch on CUDA
(:func:`resolve_backend`).
 Heavy modules (torch,
onnxruntime, segment_anything) are imported only by the builders that need them, so the
classical configuration starts in milliseconds.
"""

from __future__ import annotations

import importlib.util
from typing import Callable, Dict, Optional

from ..config import first_stage_path, resolve_model_path
from ..errors import ConfigError
from ..fusion.laplacian import LaplacianStage
from ..prior.thermal import EmptyPrior, ThermalPrior

PRIOR_SOURCES: Dict[str, Callable] = {}
FIRST_STAGES: Dict[str, Callable] = {}
REFINERS: Dict[str, Callable] = {}


def register(table: Dict[str, Callable], name: str):
    def decorate(builder):
        table[name] = builder
        return builder
    return decorate


def onnx_available() -> bool:
    """Whether onnxruntime and onnx (the exporter's checker) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ('onnxruntime', 'onnx'))


def resolve_backend(config: dict, device: str) -> str:
    """
    'torch' or 'onnx' for ``config['backend']`` (auto, torch, onnx) on ``device``.

    ``auto``: ONNX Runtime on the CPU when it is installed, torch on CUDA (torch's CUDA path
    needs no provider libraries beyond torch's own).
    """
    wanted = config.get('backend', 'torch')
    if wanted != 'auto':
        return wanted
    if device == 'cpu' and onnx_available():
        return 'onnx'
    return 'torch'


def _onnx(config: dict) -> bool:
    return config.get('backend') == 'onnx'  # 'auto' is resolved by the pipeline before this


def sam_decoder(config: dict, device: str) -> Optional[Callable]:
    """Return the SAM mask decoder maker for the config's backend (None: torch's own)."""
    if not _onnx(config):
        return None
    from ..onnx.sam_decoder import OnnxMaskDecoder  # onnxruntime: only for backend onnx
    return lambda model: OnnxMaskDecoder.from_model(model, device, config['threads'])


@register(PRIOR_SOURCES, 'thermal')
def _thermal_prior(config, device):
    return ThermalPrior.from_config(config)


@register(PRIOR_SOURCES, 'none')
def _empty_prior(config, device):
    return EmptyPrior()


@register(PRIOR_SOURCES, 'sam')
def _sam_prior(config, device):
    from ..prior.sam import build_sam_provider  # torch (and SAM): prior.source sam only
    return build_sam_provider(config, device, decoder=sam_decoder(config, device))


@register(FIRST_STAGES, 'laplacian')
def _laplacian(config, device):
    return LaplacianStage(config['first_stage.levels'])


def _learned_stages(config: dict):
    """
    Return the modules that build the first stage and the refiner for the config's backend.

    Imported here, when a learned stage is built: torch then loads after the pipeline has set
    OpenMP's wait policy (:func:`~sgdfuse_ros.hardware.prepare_process`), and a configuration
    without a learned stage never loads it (nor onnxruntime).
    """
    if _onnx(config):
        from ..onnx import fusion_networks  # torch + onnxruntime: backend onnx only
        return fusion_networks, fusion_networks
    from ..fusion import network, refiner  # torch: a learned stage on torch only
    return network, refiner


@register(FIRST_STAGES, 'network')
def _network(config, device):
    path = first_stage_path(config)
    module, _ = _learned_stages(config)
    if _onnx(config):
        return module.load_onnx_first_stage(path, config)
    return module.load_first_stage(path, device)


@register(REFINERS, 'diffusion')
def _diffusion(config, device):
    path = resolve_model_path(config['refiner.weights'], 'refiner.pt')
    _, module = _learned_stages(config)
    if _onnx(config):
        return module.load_onnx_refiner(path, config)
    return module.load_refiner(path, config['refiner.steps'], config['refiner.seed'], device)


def _lookup(table, name, what):
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {what} '{name}' (known: {', '.join(sorted(table))})") from None


def build_prior_source(config: dict, device: str):
    return _lookup(PRIOR_SOURCES, config['prior.source'], 'prior source')(config, device)


def build_first_stage(config: dict, device: str):
    return _lookup(FIRST_STAGES, config['first_stage.type'], 'first stage')(config, device)


def build_refiner(config: dict, device: str) -> Optional[Callable]:
    if config['refiner.steps'] <= 0:
        return None
    return _lookup(REFINERS, 'diffusion', 'refiner')(config, device)


def needs_torch(config: dict) -> bool:
    return (config['first_stage.type'] == 'network' or config['refiner.steps'] > 0
            or config['prior.source'] == 'sam')
