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
What the seed method's refiner would cost per frame: an SR3-sized conditional UNet, 60 steps.

The SGDFuse paper refines the first-stage fusion with a conditional diffusion model whose denoiser
is the SR3 UNet (Saharia et al., "Image Super-Resolution via Iterative Refinement"). The sizes are
those of SGDFuse's published stage-2 config (``config/fusion_train.json`` in
boshizhang123/SGDFuse): ``in_channel 5`` (noisy image concatenated with the condition),
``out_channel 3``, ``inner_channel 64``, ``channel_multiplier [1, 2, 4, 8]``, ``res_blocks 2``,
``attn_res [16]``, 60 sampling steps (``beta_schedule.val.n_timestep``). With 160-pixel training
crops the feature maps are 160/80/40/20 pixels, so ``attn_res [16]`` never matches and the only
self-attention is SR3's middle block, at the lowest (1/8) resolution. The rest is SR3's UNet:
GroupNorm(32) + Swish, a sinusoidal noise-level code and MLP added in every residual block,
stride-2 convolutions down, nearest + 3x3 convolution up, ``res_blocks + 1`` blocks per level on
the way up. ``attention_levels=(3,)`` adds attention to the lowest level's blocks too (SR3 run
at 128 px with ``attn_res [16]``): 60.7 M parameters and 1.97 TFLOP/step instead.

Only the cost is measured (random weights: the cost does not depend on the values).
``python benchmarks/seed_reference.py`` (or ``bench_pipeline.py --seed-ref``) counts the
parameters, counts the FLOPs of one denoising step at 640x480 with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device (multiply-add = 2 FLOPs;
convolutions, matrix products and attention, i.e. what dominates; norms and activations are not
counted), times one step on this machine and caches it all in
``benchmarks/results/seed_reference.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys
import time
from typing import Optional, Tuple

from machine import describe  # benchmarks/machine.py
import torch
from torch import nn
from torch.nn import functional as F

RESULTS = Path(__file__).resolve().parent / 'results'
CACHE = RESULTS / 'seed_reference.json'
SEED_STEPS = 60
WIDTH, HEIGHT = 640, 480


class NoiseLevelEncoding(nn.Module):
    """Sinusoidal code of the (continuous) noise level, as in SR3."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        step = torch.arange(half, dtype=level.dtype, device=level.device) / half
        angles = 1e4 * level[:, None] * torch.exp(-math.log(1e4) * step[None, :])
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class Block(nn.Module):

    def __init__(self, dim: int, dim_out: int, groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim)
        self.conv = nn.Conv2d(dim, dim_out, 3, padding=1)

    def forward(self, x):
        return self.conv(F.silu(self.norm(x)))


class ResBlock(nn.Module):

    def __init__(self, dim: int, dim_out: int, emb_dim: int, groups: int = 32):
        super().__init__()
        self.noise = nn.Linear(emb_dim, dim_out)
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.skip = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, emb):
        h = self.block1(x) + self.noise(emb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions (SR3's AttnBlock)."""

    def __init__(self, dim: int, groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim)
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        attn = torch.softmax(torch.einsum('ncq,nck->nqk', q, k) / math.sqrt(c), dim=-1)
        y = torch.einsum('nqk,nck->ncq', attn, v).reshape(n, c, h, w)
        return x + self.out(y)


class ResAttn(nn.Module):

    def __init__(self, dim, dim_out, emb_dim, attention: bool, groups: int = 32):
        super().__init__()
        self.res = ResBlock(dim, dim_out, emb_dim, groups)
        self.attn = SelfAttention(dim_out, groups) if attention else None

    def forward(self, x, emb):
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class SR3UNet(nn.Module):
    def __init__(self, in_channels: int = 5, out_channels: int = 3, width: int = 64,
                 mults=(1, 2, 4, 8), blocks: int = 2, attention_levels=(), groups: int = 32):
        super().__init__()
        emb = width
        self.encode_noise = NoiseLevelEncoding(width)
        self.noise_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(),
                                       nn.Linear(4 * width, emb))
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [width]
        channels = width
        for level, mult in enumerate(mults):
            for _ in range(blocks):
                self.down.append(ResAttn(channels, width * mult, emb, level in attention_levels,
                                         groups))
                channels = width * mult
                skips.append(channels)
            if level != len(mults) - 1:
                self.down.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
                skips.append(channels)
        self.middle = nn.ModuleList([ResAttn(channels, channels, emb, True, groups),
                                     ResAttn(channels, channels, emb, False, groups)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(ResAttn(channels + skips.pop(), width * mult, emb,
                                       level in attention_levels, groups))
                channels = width * mult
            if level != 0:
                self.up.append(nn.Upsample(scale_factor=2, mode='nearest'))
                self.up.append(nn.Conv2d(channels, channels, 3, padding=1))
        self.head = Block(channels, out_channels, groups)  # GroupNorm, Swish, 3x3 conv

    def forward(self, x, noise_level):
        emb = self.noise_mlp(self.encode_noise(noise_level))
        h = self.stem(x)
        feats = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResAttn) else layer(h)
            feats.append(h)
        for layer in self.middle:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, ResAttn):
                h = layer(torch.cat([h, feats.pop()], 1), emb)
            else:
                h = layer(h)
        return self.head(h)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def step_flops(model: Optional[nn.Module] = None, width: int = WIDTH, height: int = HEIGHT) -> int:
    """Count the FLOPs of one denoising step on the meta device (``model`` is moved there)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = SR3UNet().to('meta') if model is None else model.to('meta')
    x = torch.zeros(1, meta.stem.in_channels, height, width, device='meta')
    level = torch.zeros(1, device='meta')
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x, level)
    return int(counter.get_total_flops())


def time_step(width: int = WIDTH, height: int = HEIGHT, threads: int = 0) -> Tuple[float, float]:
    """
    Time one denoising step on the CPU: (wall seconds, process CPU seconds).

    An untimed warm-up at 1/16 of the area comes first. CPU seconds / threads is what the wall time
    would be on idle cores; on a shared machine the wall time can be much longer.
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SR3UNet().eval()
    level = torch.full((1,), 0.5)
    channels = model.stem.in_channels
    with torch.inference_mode():
        model(torch.rand(1, channels, height // 4, width // 4), level)
        x = torch.rand(1, channels, height, width)
        start, cpu = time.perf_counter(), time.process_time()
        model(x, level)
        return time.perf_counter() - start, time.process_time() - cpu


def machine() -> dict:
    return dict(describe(('torch',)), torch_threads=torch.get_num_threads())


def measure(width: int = WIDTH, height: int = HEIGHT, time_it: bool = True) -> dict:
    params = count_parameters(SR3UNet())
    flops = step_flops(SR3UNet(), width, height)
    record = {
        'architecture': "SR3 UNet as in SGDFuse's stage-2 config: in 5 ch (noisy + condition), "
                        'out 3 ch, width 64, mults 1/2/4/8, 2 res blocks/level (3 on the way '
                        'up), single-head self-attention in the middle block at 1/8 resolution, '
                        'GroupNorm 32',
        'parameters': params,
        'size': [width, height],
        'flops_per_step': flops,
        'flops_counting': 'torch.utils.flop_counter.FlopCounterMode (conv, matmul, attention; '
                          '1 multiply-add = 2 FLOPs)',
        'steps_per_frame': SEED_STEPS,
        'flops_per_frame': flops * SEED_STEPS,
    }
    if time_it:
        seconds, cpu_seconds = time_step(width, height)
        record.update(step_seconds=seconds, frame_seconds=seconds * SEED_STEPS,
                      step_cpu_seconds=cpu_seconds,
                      date=time.strftime('%Y-%m-%d %H:%M:%S'), machine=machine())
    return record


def load_cached() -> dict:
    return json.loads(CACHE.read_text()) if CACHE.is_file() else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--no-time', action='store_true',
                        help='only count parameters and FLOPs (the timed step takes ~30 s on 2 '
                             'cores)')
    parser.add_argument('--size', default=f'{WIDTH}x{HEIGHT}', help='WIDTHxHEIGHT')
    parser.add_argument('--json', action='store_true', help='print the record as JSON (last line)')
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split('x'))
    record = measure(width, height, time_it=not args.no_time)
    if args.json:
        print(json.dumps(record))
        return 0
    print(f"SR3-sized refiner: {record['parameters'] / 1e6:.1f} M parameters, "
          f"{record['flops_per_step'] / 1e12:.2f} TFLOP per step at {width}x{height}")
    if 'step_seconds' in record:
        print(f"one step: {record['step_seconds']:.1f} s on {record['machine']['cpu']} "
              f"({record['machine']['torch_threads']} threads) -> "
              f"{record['frame_seconds']:.0f} s per frame at {SEED_STEPS} steps "
              f"(CPU time {record['step_cpu_seconds']:.1f} s; load average "
              f"{record['machine']['load_average_1min_at_start']})")
        RESULTS.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(record, indent=1) + '\n')
        print(f'cached in {CACHE}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
