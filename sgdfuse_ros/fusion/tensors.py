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
plug-ins.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbone import count_parameters


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


def highpass_planes(planes: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    :func:`highpass` of float32 (C, H, W) planes (H, W even) with OpenCV, as (C, H, W).

    The same values as the torch version up to float rounding (a 2x2 mean is INTER_AREA at
    exactly half size, a bilinear x2 upsample without corner alignment is INTER_LINEAR), for
    about a seventh of its CPU time at 640x512 (0.7 vs 5.5 ms, one thread).
    """
    c, h, w = planes.shape
    if h % 2 or w % 2:
        raise ValueError(f'highpass_planes needs an even height and width, got {w}x{h}')
    if out is None:
        out = np.empty(planes.shape, np.float32)
    for k in range(c):
        plane = np.ascontiguousarray(planes[k], np.float32)
        coarse = cv2.resize(plane, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        np.subtract(plane, cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR),
                    out=out[k])
    return out


def pack_planes(planes: Sequence[np.ndarray], multiple: int, lead: int = 0,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Pack HxW planes into one float32 (1, lead + len(planes), Hp, Wp) network input.

    Hp and Wp are the next multiples of ``multiple``, padded by repeating the last row and
    column (torch's replicate padding, :func:`~sgdfuse_ros.fusion.backbone.pad_to_multiple`);
    the first ``lead`` channels are left for the caller to fill. ``out`` is filled and
    returned when it has that shape (a buffer kept across frames of one size), else a new one.
    What ``torch.cat`` + ``pad_to_multiple`` do, without the torch operators' overhead on the
    CPU (one copy of each plane).
    """
    h, w = planes[0].shape
    shape = (1, lead + len(planes), h + (-h) % multiple, w + (-w) % multiple)
    if out is None or out.shape != shape or out.dtype != np.float32:
        out = np.empty(shape, np.float32)
    for k, plane in enumerate(planes):
        dst = out[0, lead + k]
        dst[:h, :w] = plane
        dst[:h, w:] = dst[:h, w - 1:w]
        dst[h:] = dst[h - 1:h]
    return out


def resize_controls(maps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Control maps (1/4 scale) at a band's resolution: mean-pool down, bilinear up."""
    h, w = like.shape[-2:]
    mh = maps.shape[-2]
    if h == mh:
        return maps
    if h < mh:
        return F.avg_pool2d(maps, mh // h)
    return F.interpolate(maps, size=(h, w), mode='bilinear', align_corners=False)


def prior_planes(prior, shape):
    """targets, boundaries of a SemanticPrior at ``shape`` as float32 arrays (zeros for None)."""
    if prior is None:
        zeros = np.zeros(tuple(shape), np.float32)
        return zeros, zeros
    prior = prior.resized(shape)
    return (np.ascontiguousarray(prior.targets, np.float32),
            np.ascontiguousarray(prior.boundaries, np.float32))


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
