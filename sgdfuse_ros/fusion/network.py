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
The learned first stage: prior-guided fusion of thermal and visible luminance.

Design (CPU budget: <= 25 ms at 640x512 on 2 cores). The network never paints pixels itself.
A fixed Laplacian pyramid (2x2 mean down, bilinear up, ``levels`` bands) decomposes both sources;
a small UNet that sees the sources and the semantic prior at 1/4 resolution (pixel-unshuffle x4
of ``[thermal, visible_y, prior.targets, prior.boundaries]``) predicts smooth per-pixel
*fusion controls*, which are applied at each band's own resolution:

- base band (1/8 scale): ``w_ir * A + w_vis * B + (1 - w_ir - w_vis) * m + 0.25 * tanh(o)``
  with ``w_* = 1.5 * sigmoid(.)`` and ``m`` the image's mean base level. ``w_ir = w_vis = 0.75``
  (the network's zero output) is a contrast-preserving weighted sum of the sources;
- detail band l: ``g_sel * maxabs(a_l, b_l) + g_ir * a_l + g_vis * b_l`` with
  ``g_sel = 2 * sigmoid(.)`` (1 at start: keep the stronger edge of the two cameras) and
  ``g_ir, g_vis = sigmoid(. - 3)`` (small additive mixes); the finest (full-resolution) band
  has ``g_sel`` and, with ``fine_vis`` (the default since the visible-led training), a visible
  mix ``g_vis``, so that where the thermal camera only has cold clutter (a daylight sky) the
  network can keep the visible image's own fine detail instead of the stronger thermal noise.
  The finest band stays a handful of full-resolution operations.

The last layer starts at zero, so an untrained network is exactly that hand-designed fusion and
training moves the controls per region (e.g. towards the thermal level on warm targets).

The ONNX Runtime version of this stage and its export live in
:mod:`sgdfuse_ros.onnx.fusion_networks`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbone import LowResUNet, pad_to_multiple
from .tensors import (gaussian_pyramid, image_tensor, prior_tensors, resize_controls,
                      TorchStage, upsample_to)
from .weights import load_weights

KIND = 'first_stage'
DEFAULT_ARCH = {'levels': 4, 'c1': 16, 'c2': 32, 'blocks': 2, 'fine_vis': True,
                'target_gate': True}

#: target gate: the offset ``delta`` is averaged over the non-target pixels of 1/8-scale cells
#: and their 3x3 neighbourhood; cells with less than this share of non-target pixels lean on
#: their neighbours
GATE_MIN_SURROUND = 0.05


class FirstStageNet(nn.Module):
    """``(ir, vis_y, targets, boundaries)``, each (N, 1, H, W) in [0, 1] -> fused (N, 1, H, W)."""

    def __init__(self, levels: int = 4, c1: int = 16, c2: int = 32, blocks: int = 2,
                 fine_vis: bool = False, target_gate: bool = False):
        super().__init__()
        if not 3 <= int(levels) <= 6:
            raise ValueError('levels must be 3..6')
        self.levels = int(levels)
        self.fine_vis = bool(fine_vis)
        self.target_gate = bool(target_gate)
        self.arch = {'levels': self.levels, 'c1': int(c1), 'c2': int(c2), 'blocks': int(blocks),
                     'fine_vis': self.fine_vis}
        if self.target_gate:  # weights without the key load as the network without the gate
            self.arch['target_gate'] = True
        self.n_detail = self.levels - 1
        self.gate_channel = 4 + 3 * (self.n_detail - 1) + int(self.fine_vis)
        self.net = LowResUNet(4, self.gate_channel + int(self.target_gate), c1, c2, blocks)

    @classmethod
    def from_arch(cls, arch: dict) -> 'FirstStageNet':
        return cls(**arch)

    @property
    def multiple(self) -> int:
        return max(8, 2 ** (self.levels - 1))

    def forward(self, ir, vis, targets, boundaries):
        x = torch.cat([ir, vis, targets, boundaries], dim=1)
        x, (h, w) = pad_to_multiple(x, self.multiple)
        o = self.net(x)
        sources = x[:, 0:2]  # thermal, visible: both pyramids in one pass
        gauss = gaussian_pyramid(sources, self.levels)
        base_a, base_b = gauss[-1][:, 0:1], gauss[-1][:, 1:2]
        ob = resize_controls(o[:, 0:3], base_a)
        w_ir = 1.5 * torch.sigmoid(ob[:, 0:1])
        w_vis = 1.5 * torch.sigmoid(ob[:, 1:2])
        mean = 0.5 * (base_a.mean(dim=(2, 3), keepdim=True)
                      + base_b.mean(dim=(2, 3), keepdim=True))
        out = w_ir * base_a + w_vis * base_b + (1.0 - w_ir - w_vis) * mean \
            + 0.25 * torch.tanh(ob[:, 2:3])
        # detail bands, coarse to fine, collapsed as we go (the same sums as collapse(bands))
        for level in range(self.n_detail - 1, 0, -1):
            fine = gauss[level]
            detail = fine - upsample_to(gauss[level + 1], fine)
            a, b = detail[:, 0:1], detail[:, 1:2]
            k = 4 + 3 * (level - 1)
            g = resize_controls(o[:, k:k + 3], a)
            strongest = torch.where(a.abs() >= b.abs(), a, b)
            band = (2.0 * torch.sigmoid(g[:, 0:1]) * strongest
                    + torch.sigmoid(g[:, 1:2] - 3.0) * a
                    + torch.sigmoid(g[:, 2:3] - 3.0) * b)
            out = upsample_to(out, band) + band
        # finest band (full resolution): the edge-keeping gain and, with fine_vis, the visible
        # mix, both upsampled from 1/4 scale in one call; one 3-channel upsample gives the coarse
        # result and both sources' 1/2-scale levels
        up = upsample_to(torch.cat([out, gauss[1]], dim=1), sources)
        a = sources[:, 0:1] - up[:, 1:2]
        b = sources[:, 1:2] - up[:, 2:3]
        gains = 2.0 * torch.sigmoid(o[:, 3:4])
        if self.fine_vis:
            k = 4 + 3 * (self.n_detail - 1)
            gains = torch.cat([gains, torch.sigmoid(o[:, k:k + 1] - 3.0)], dim=1)
        gains = resize_controls(gains, a)
        fused = up[:, 0:1] + gains[:, 0:1] * torch.where(a.abs() >= b.abs(), a, b)
        if self.fine_vis:
            fused = fused + gains[:, 1:2] * b
        if self.target_gate:
            fused = self.gate(fused, sources[:, 0:1], x[:, 2:3], o)
        return fused[..., :h, :w].clamp(0.0, 1.0)

    def gate(self, fused, ir, targets, o):
        """
        Inside the prior's targets, move towards the thermal image at the surround's level.

        ``fused + alpha * targets * (ir + delta - fused)``: ``delta`` is the mean of
        ``fused - ir`` over the non-target pixels around (1/8-scale cells and their 3x3
        neighbourhood, ~24 px), so a gated target stands out from its fused surround by its
        thermal contrast; ``alpha = sigmoid(. - 1)`` is a learned control map (1/4 scale).
        Without a prior (all-zero targets) this is the identity.
        """
        keep = 1.0 - targets
        low = F.avg_pool2d(torch.cat([(fused - ir) * keep, keep], dim=1), 8)
        low = F.avg_pool2d(F.pad(low, (1, 1, 1, 1), mode='replicate'), 3, stride=1)
        low = upsample_to(low, ir)
        delta = low[:, 0:1] / low[:, 1:2].clamp_min(GATE_MIN_SURROUND)
        k = self.gate_channel
        alpha = resize_controls(torch.sigmoid(o[:, k:k + 1] - 1.0), ir)
        return fused + alpha * targets * (ir + delta - fused)


class NetworkFirstStage(TorchStage):
    """First-stage plug-in: ``(thermal, visible_y, prior) -> fused_y`` (float32 HxW in [0, 1])."""

    name = 'network'

    @torch.inference_mode()
    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray, prior) -> np.ndarray:
        ir = image_tensor(thermal, self.device)
        vis = image_tensor(visible_y, self.device)
        t, b = prior_tensors(prior, thermal.shape, self.device)
        out = self.model(ir, vis, t, b)
        return out[0, 0].float().cpu().numpy()


def load_first_stage(path, device: str = 'cpu') -> NetworkFirstStage:
    model, payload = load_weights(path, KIND, FirstStageNet.from_arch)
    return NetworkFirstStage(model, device, payload.get('info'))
