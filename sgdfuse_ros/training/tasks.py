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

"""What each stage trains: its model, the loss of a batch and a validation ``fuse``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .losses import DEFAULT_WEIGHTS, fusion_losses
from ..fusion.laplacian import laplacian_fusion
from ..fusion.network import FirstStageNet
from ..fusion.network import KIND as FIRST_KIND
from ..fusion.refiner import RefinerNet
from ..fusion.weights import save_weights
from ..pipeline.images import merge_luma


def _planes(data: torch.Tensor):
    return data[:, 0:1], data[:, 1:2], data[:, 2:3], data[:, 3:4]


def sample_tensors(sample, device):
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None].to(device)
    return t(sample.thermal), t(sample.visible_y), t(sample.targets), t(sample.boundaries)


def laplacian_reference(sample) -> np.ndarray:
    """Return the classical baseline's fused BGR image (the validation score's reference)."""
    fused = laplacian_fusion(sample.thermal, sample.visible_y, 4)
    return merge_luma(fused, sample.chroma)[0]


class FirstStageTask:
    kind = FIRST_KIND

    def __init__(self, arch: dict, device: str = 'cpu', loss_weights: dict = None):
        self.arch = dict(arch)
        self.device = device
        self.model = FirstStageNet(**self.arch).to(device)
        self.loss_weights = loss_weights

    def loss(self, data: torch.Tensor) -> dict:
        ir, vis, targets, boundaries = _planes(data)
        fused = self.model(ir, vis, targets, boundaries)
        return fusion_losses(fused, ir, vis, targets, self.loss_weights)

    def fuse(self, sample) -> np.ndarray:
        fused = self.model(*sample_tensors(sample, self.device))[0, 0].float().cpu().numpy()
        return merge_luma(fused, sample.chroma)[0]

    reference_fuse = staticmethod(laplacian_reference)

    def save(self, out: Path, info: dict) -> None:
        save_weights(out, self.kind, self.arch, self.model,
                     {**info, 'loss_weights': self.loss_weights or dict(DEFAULT_WEIGHTS)})


#: The refiner's loss: sharpen towards the stronger source's edges (gradient_deficit), with their
#: orientation (gradient_vector), without overshooting them (gradient), keeping structure; in
#: visible-led regions (daylight sky) the visible image is the reference, as for the first stage.
REFINER_LOSS_WEIGHTS = {'intensity': 1.0, 'gradient': 10.0, 'gradient_deficit': 35.0,
                        'gradient_vector': 30.0, 'ssim': 1.0, 'scd': 0.5, 'contrast': 1.0,
                        'visible_lead': 1.0, 'lead_edges': 1.0, 'target_contrast': 3.0}


class RefinerTask:
    """
    Trains the denoiser on top of a frozen first stage.

    Per crop: ``x0 = 2 * first - 1`` (the frozen first stage's result), ``t ~ U{1..t_start}``,
    ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``; the denoiser predicts ``x0^`` and the loss is
    ``denoise_weight * |x0^ - x0|^2`` (the denoising objective, mean squared error, with the
    first-stage result as the x0 target: an anchor) ``+ fusion_losses((x0^ + 1) / 2)`` (what
    moves it away from the first stage: full-resolution gradients, structure, contrast, target
    intensity).
    """

    kind = 'refiner'

    def __init__(self, arch: dict, first_stage: torch.nn.Module, device: str = 'cpu',
                 loss_weights: dict = None, seed: int = 0, val_steps: int = 2):
        self.arch = dict(arch)
        self.device = device
        self.model = RefinerNet(**self.arch).to(device)
        self.first_stage = first_stage.to(device).eval()
        for p in self.first_stage.parameters():
            p.requires_grad_(False)
        weights = dict(loss_weights or {})
        self.denoise_weight = float(weights.pop('denoise', 2.0))
        self.loss_weights = weights or dict(REFINER_LOSS_WEIGHTS)
        self.seed = seed
        self.val_steps = val_steps

    def loss(self, data: torch.Tensor) -> dict:
        ir, vis, targets, boundaries = _planes(data)
        model = self.model
        with torch.no_grad():
            first = self.first_stage(ir, vis, targets, boundaries)
        cond, hp, _ = model.conditions(ir, vis, targets, boundaries, first)
        x0 = 2.0 * cond[:, 4:5] - 1.0
        n = x0.shape[0]
        t = torch.randint(1, model.t_start + 1, (n,), device=x0.device)
        abar = torch.as_tensor(model.schedule.alphas_cumprod, dtype=torch.float32,
                               device=x0.device)[t].view(n, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1.0 - abar).sqrt() * torch.randn_like(x0)
        x0_hat = model.denoise(x_t, t, cond, hp)
        fused = ((x0_hat + 1.0) * 0.5).clamp(0.0, 1.0)
        terms = fusion_losses(fused, ir, vis, targets, self.loss_weights)
        denoise = self.denoise_weight * ((x0_hat - x0) ** 2).mean()
        terms['denoise'] = denoise
        terms['total'] = terms['total'] + denoise
        return terms

    def _first(self, sample):
        tensors = sample_tensors(sample, self.device)
        return tensors, self.first_stage(*tensors)

    def fuse(self, sample) -> np.ndarray:
        tensors, first = self._first(sample)
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(first.shape, generator=gen).to(self.device)
        out = self.model(*tensors, first, self.val_steps, noise)
        return merge_luma(out[0, 0].float().cpu().numpy(), sample.chroma)[0]

    def reference_fuse(self, sample) -> np.ndarray:
        """Fuse with the first stage alone: the refiner's validation score is its gain over it."""
        _, first = self._first(sample)
        return merge_luma(first[0, 0].float().cpu().numpy(), sample.chroma)[0]

    def save(self, out: Path, info: dict) -> None:
        save_weights(out, self.kind, self.arch, self.model,
                     {**info, 'loss_weights': {**self.loss_weights,
                                               'denoise': self.denoise_weight},
                      'x0_target': 'first-stage result (anchor) + fusion losses'})
