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
Tensor helpers the learned stages share (torch and ONNX backends alike).

Image planes in and out of tensors (:func:`image_tensor`, :func:`prior_tensors`), the pyramid
pieces (:func:`gaussian_pyramid`, :func:`upsample_to`, :func:`highpass`), control maps at a
band's resolution (:func:`resize_controls`) and :class:`TorchStage`, the base of the torch
plug-ins. (The refiner lays its inputs out with numpy: :mod:`sgdfuse_ros.fusion.refiner`.)
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbone import count_parameters
from ..prior.format import prior_planes


def gaussian_pyramid(x: torch.Tensor, levels: int) -> List[torch.Tensor]:
    """``levels`` images, fine -> coarse, each a 2x2 mean of the one before."""
    out = [x]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to the height and width of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode='bilinear', align_corners=False)


def highpass(x: torch.Tensor) -> torch.Tensor:
    """Return the finest Laplacian band (x minus its 2x2-mean, bilinear-upsampled)."""
    return x - upsample_to(F.avg_pool2d(x, 2), x)


def resize_controls(maps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Control maps (1/4 scale) at a band's resolution: mean-pool down, bilinear up."""
    h, w = like.shape[-2:]
    mh = maps.shape[-2]
    if h == mh:
        return maps
    if h < mh:
        return F.avg_pool2d(maps, mh // h)
    return F.interpolate(maps, size=(h, w), mode='bilinear', align_corners=False)


def prior_tensors(prior, shape, device):
    """targets, boundaries of a SemanticPrior (or zeros for None) as (1, 1, H, W) tensors."""
    if prior is None:
        zeros = torch.zeros((1, 1) + tuple(shape), device=device)
        return zeros, zeros
    targets, boundaries = prior_planes(prior, shape)
    return image_tensor(targets, device), image_tensor(boundaries, device)


def image_tensor(image: np.ndarray, device) -> torch.Tensor:
    """Return a float32 HxW array as a (1, 1, H, W) tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device)


class TorchStage:
    """
    What the torch plug-ins share.

    The model on its device in inference layout, the training facts of its weights file,
    ``close()`` (frees the model) and its parameter count.
    """

    def __init__(self, model: nn.Module, device: str = 'cpu', info: dict = None):
        self.model = model.to(device).eval()
        self.model.net.use_channels_last()
        self.device = device
        self.info = info or {}

    def close(self):
        self.model = None

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)
