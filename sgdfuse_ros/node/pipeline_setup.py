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
The node's side of the fusion pipeline: check the device, build, warm up, close.

Everything here runs outside the node's lock, in its lifecycle transitions; a failure becomes one
:class:`~sgdfuse_ros.errors.ConfigError` line for the transition that caused it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..errors import ConfigError, SgdfuseError
from ..hardware import resolve_device
from ..pipeline.fusion_pipeline import FusionPipeline
from ..pipeline.stages import needs_torch

WARMUP_SHAPE = (256, 320)     # the dummy frame fused on activate


def configured_device(config: dict) -> Optional[str]:
    """
    Check ``device: cuda`` at configure time rather than at the first frame.

    With no usable GPU: ConfigError now (configure), not at the first frame; with
    ``device_fallback`` a warning and the CPU. None when no stage needs torch.
    """
    if needs_torch(config):
        return resolve_device(config)
    return None


def build_pipeline(factory: Callable[[dict], Any], config: dict):
    """Build the pipeline and fuse one warm-up frame; ConfigError says why that failed."""
    try:
        pipeline = factory(dict(config))
    except SgdfuseError:
        raise
    except Exception as err:  # torch, onnxruntime, a broken weights file...
        raise ConfigError(f'could not build the fusion pipeline: {type(err).__name__}: '
                          f'{err}') from err
    try:
        warm_up(pipeline, config['limits.max_input_pixels'])
    except BaseException as err:
        close_pipeline(pipeline)
        if isinstance(err, Exception) and not isinstance(err, SgdfuseError):
            raise ConfigError(f'the fusion pipeline failed on its warm-up frame: '
                              f'{type(err).__name__}: {err}') from err
        raise
    return pipeline


def warm_up(pipeline, max_pixels: int) -> None:
    """One dummy frame through every stage, so the first real frame is not slow."""
    h, w = WARMUP_SHAPE
    while h * w > max_pixels and h > 8:
        h, w = h // 2, w // 2
    yy, xx = np.mgrid[0:h, 0:w]
    thermal = (20000 + 40 * ((xx // 16 + yy // 16) % 2)).astype(np.uint16)
    visible = np.dstack([(xx * 255 // w).astype(np.uint8)] * 3)
    pipeline.process(thermal, visible, 'mono16', 'bgr8')
    agc = getattr(pipeline, 'agc', None)
    if agc is not None and hasattr(agc, 'reset'):
        agc.reset()  # the dummy frame must not steer the temporal AGC


def default_pipeline_factory(config: dict):
    return FusionPipeline(config)


def close_pipeline(pipeline) -> None:
    if pipeline is not None and hasattr(pipeline, 'close'):
        pipeline.close()
