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
The small low-resolution UNet that both learned stages use as their trunk.

CPU speed at 640x512 is the design constraint: the input is folded by pixel-unshuffle (x4), so
every 3x3 convolution runs at 1/4 or 1/8 of the resolution, on 16..48 channels. No batch
normalisation (nothing to fold, identical train/inference behaviour). An optional global
vector (image statistics, the diffusion time embedding) is added to the 1/8-scale features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResBlock(nn.Module):

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class LowResUNet(nn.Module):
    """
    (N, in_ch, H, W) -> (N, out_ch, H/4, W/4); H and W multiples of 8 (caller pads).

    The stem is a 4x4 stride-4 convolution: the same as pixel-unshuffle x4 followed by a 1x1
    convolution, without materialising the unshuffled tensor.

    ``cond_dim`` > 0 adds ``Linear(cond_dim -> c2)`` of a per-image vector to the 1/8 features.
    The last layer starts at zero, so a fresh network outputs exactly zero (the caller's
    parametrisation then reduces to its hand-designed starting point).
    """

    def __init__(self, in_ch: int, out_ch: int, c1: int = 24, c2: int = 48, blocks: int = 2,
                 cond_dim: int = 0):
        super().__init__()
        self.stem = nn.Conv2d(in_ch, c1, 4, stride=4)
        self.enc1 = nn.Conv2d(c1, c1, 3, padding=1)
        self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = nn.Sequential(*[ResBlock(c2, dilation=1 + (i % 2)) for i in range(blocks)])
        self.global_fc = nn.Linear(c2, c2)          # image-level context from pooled features
        self.cond_fc = nn.Linear(cond_dim, c2) if cond_dim > 0 else None
        self.fuse = nn.Conv2d(c1 + c2, c1, 1)
        self.dec = nn.Conv2d(c1, c1, 3, padding=1)
        self.head = nn.Conv2d(c1, out_ch, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def use_channels_last(self) -> 'LowResUNet':
        """
        Switch to the channels-last layout for inference on CPU.

        oneDNN convolutions run about 2x faster in NHWC; the input is converted on entry and the
        output returned in the usual NCHW layout (same values).
        """
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    channels_last = False

    def forward(self, x, cond=None):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            return self._forward(x, cond).contiguous()
        return self._forward(x, cond)

    def _forward(self, x, cond=None):
        s1 = F.relu(self.enc1(F.relu(self.stem(x))))
        s2 = F.relu(self.down(s1))
        s2 = s2 + self.global_fc(s2.mean(dim=(2, 3)))[:, :, None, None]
        if self.cond_fc is not None:
            s2 = s2 + self.cond_fc(cond)[:, :, None, None]
        s2 = self.mid(s2)
        up = F.interpolate(s2, size=s1.shape[-2:], mode='bilinear', align_corners=False)
        y = F.relu(self.fuse(torch.cat([s1, F.relu(up)], dim=1)))
        y = F.relu(self.dec(y))
        return self.head(y)


def pad_to_multiple(x: torch.Tensor, multiple: int):
    """Replicate-pad the last two dims up to a multiple; returns (padded, (h, w)) to crop back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode='replicate')
    return x, (h, w)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
