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
The second stage: a few-step conditional diffusion refiner of the fused luminance.

Denoiser (``RefinerNet``): predicts ``x0`` (images in [-1, 1]) from the noisy ``x_t``, the
timestep and the conditions: thermal, visible luminance, the prior's targets and boundaries and
the first-stage result. Like the first stage it works at 1/4 resolution on 16..32 channels (a
stride-4 patch convolution in, pixel-shuffle x4 out), and it can move full-resolution detail:

    x0^ = first + shuffle(r) + a_ir * hp(ir) + a_vis * hp(vis)

``first`` is the first-stage result, ``r`` 16 residual channels at 1/4 scale (pixel-shuffled to
full resolution), ``hp`` the finest Laplacian band of a source and ``a_*`` smooth gains (0 at
start). The timestep enters through a sinusoidal embedding added to the 1/8-scale features.
A fresh network returns ``first`` exactly, so training starts from "no change".

Sampling (``DiffusionRefiner``): SDEdit + K deterministic DDIM steps from the noised first-stage
result (:mod:`.samplers`); ``refiner.seed`` fixes the noise, so output is reproducible.
The ONNX Runtime version (the denoiser call as a graph, the loop outside) and its export live in
:mod:`sgdfuse_ros.onnx.refiner`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbone import LowResUNet, pad_to_multiple
from .samplers import refine
from .schedules import make_schedule
from .tensors import (highpass, highpass_planes, image_tensor, pack_planes, prior_planes,
                      prior_tensors, TorchStage, upsample_to)
from .weights import load_weights

KIND = 'refiner'
PAD_MULTIPLE = 8  # the denoiser's inputs are padded to it (RefinerNet.conditions)
DEFAULT_ARCH = {'c1': 24, 'c2': 32, 'blocks': 2, 'temb': 16, 'schedule': 'cosine', 'T': 1000,
                't_start': 250}


def timestep_embedding(t: torch.Tensor, dim: int, num_steps: int) -> torch.Tensor:
    """(N,) integer timesteps -> (N, dim) sinusoidal features of t / num_steps."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device)
                      * (-math.log(1000.0) / max(half - 1, 1)))
    angle = (t.float() / num_steps * 1000.0)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class RefinerNet(nn.Module):
    def __init__(self, c1: int = 24, c2: int = 32, blocks: int = 2, temb: int = 16,
                 schedule: str = 'cosine', T: int = 1000, t_start: int = 250):
        super().__init__()
        if not 1 <= int(t_start) < int(T):
            raise ValueError('t_start must be in 1..T-1')
        self.arch = {'c1': int(c1), 'c2': int(c2), 'blocks': int(blocks), 'temb': int(temb),
                     'schedule': str(schedule), 'T': int(T), 't_start': int(t_start)}
        self.temb = int(temb)
        self.num_steps = int(T)
        self.t_start = int(t_start)
        self.schedule = make_schedule(schedule, T)
        self.time_mlp = nn.Sequential(nn.Linear(temb, temb * 2), nn.SiLU())
        self.net = LowResUNet(6, 16 + 2, c1, c2, blocks, cond_dim=temb * 2)

    @classmethod
    def from_arch(cls, arch: dict) -> 'RefinerNet':
        return cls(**arch)

    def conditions(self, ir, vis, targets, boundaries, first):
        """Return the padded condition tensors, reused across the K denoiser calls."""
        cond = torch.cat([ir, vis, targets, boundaries, first], dim=1)
        cond, size = pad_to_multiple(cond, PAD_MULTIPLE)
        hp = highpass(cond[:, 0:2])
        return cond, hp, size

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """(N,) integer timesteps -> (N, 2*temb): what the network's conditioning sees."""
        return self.time_mlp(timestep_embedding(t, self.temb, self.num_steps))

    def predict_x0(self, inputs: torch.Tensor, time_features: torch.Tensor,
                   hp: torch.Tensor) -> torch.Tensor:
        """
        One denoiser call: the network's output turned into ``x0^`` in [-1, 1].

        ``inputs`` (N, 6, Hp, Wp) = [x_t, thermal, visible_y, targets, boundaries, first],
        ``time_features`` from :meth:`time_features`, ``hp`` (N, 2, Hp, Wp) the finest bands of
        thermal and visible. The one place the x0 parameterisation is written: the torch sampler
        and the exported ONNX graph (:mod:`sgdfuse_ros.onnx.refiner`) both call it.
        """
        out = self.net(inputs, time_features)
        residual = F.pixel_shuffle(out[:, :16], 4)
        gains = upsample_to(0.5 * torch.tanh(out[:, 16:18]), residual)
        first = 2.0 * inputs[:, 5:6] - 1.0
        # the two-channel sum written out: the same values, and ONNX Runtime's ReduceSum over
        # channels costs about 2 ms of CPU per call at 640x512 more than a Mul and an Add
        return first + residual + 2.0 * (gains[:, 0:1] * hp[:, 0:1] + gains[:, 1:2] * hp[:, 1:2])

    def denoise(self, x_t: torch.Tensor, t, cond: torch.Tensor, hp: torch.Tensor,
                buffer: torch.Tensor = None) -> torch.Tensor:
        """
        x_t (N, 1, Hp, Wp) in [-1, 1] at timestep t (int or (N,) tensor) -> x0^ in [-1, 1].

        ``buffer``: optional (N, 6, Hp, Wp) channels-last tensor already holding ``cond`` in
        channels 1..5 (inference: the conditions are laid out once per frame, not per step).
        """
        n = x_t.shape[0]
        if not torch.is_tensor(t):
            t = torch.full((n,), int(t), device=x_t.device)
        if buffer is not None:
            buffer[:, 0:1].copy_(x_t)
            inputs = buffer
        else:
            inputs = torch.cat([x_t, cond], dim=1)
        return self.predict_x0(inputs, self.time_features(t), hp)

    def sample(self, cond: torch.Tensor, size, steps: int, noise: torch.Tensor,
               denoise) -> torch.Tensor:
        """Run SDEdit + K DDIM steps from the noised first stage; crop to ``size``; [0, 1]."""
        h, w = size
        x0 = refine(denoise, 2.0 * cond[:, 4:5] - 1.0, steps, self.t_start, self.schedule,
                    pad_to_multiple(noise, 8)[0])
        return ((x0[..., :h, :w] + 1.0) * 0.5).clamp(0.0, 1.0)

    def forward(self, ir, vis, targets, boundaries, first, steps: int, noise: torch.Tensor):
        """Refine ``first`` (N, 1, H, W) in [0, 1] with K=steps DDIM steps -> [0, 1]."""
        cond, hp, size = self.conditions(ir, vis, targets, boundaries, first)
        buffer = None
        if self.net.channels_last:
            buffer = torch.empty((cond.shape[0], 6) + tuple(cond.shape[-2:]), dtype=cond.dtype,
                                 device=cond.device, memory_format=torch.channels_last)
            buffer[:, 1:].copy_(cond)
        return self.sample(cond, size, steps, noise,
                           lambda x, t: self.denoise(x, t, cond, hp, buffer))


class DiffusionRefiner(TorchStage):
    """Refiner plug-in: ``(thermal, visible_y, prior, first_y) -> refined_y`` (float32 [0, 1])."""

    name = 'diffusion'

    def __init__(self, model: RefinerNet, steps: int, seed: int = 0, device: str = 'cpu',
                 info: dict = None):
        if steps < 1:
            raise ValueError('steps must be >= 1')
        super().__init__(model, device, info)
        self.steps = int(steps)
        self.seed = int(seed)
        self._noise = {}  # shape -> the seeded noise: the same every frame, drawn once per size
        self._packed = None  # the conditions' buffer on the CPU, reused while the size holds

    def noise(self, shape) -> torch.Tensor:
        shape = tuple(shape)
        if shape not in self._noise:
            if len(self._noise) >= 4:  # a stream of changing sizes must not grow memory
                self._noise.clear()
            gen = torch.Generator(device='cpu').manual_seed(self.seed)
            self._noise[shape] = torch.randn((1, 1) + shape, generator=gen).to(self.device)
        return self._noise[shape]

    @torch.inference_mode()
    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray, prior,
                 first: np.ndarray) -> np.ndarray:
        if self.device == 'cpu':
            return self._refine_cpu(thermal, visible_y, prior, first)
        ir = image_tensor(thermal, self.device)
        vis = image_tensor(visible_y, self.device)
        fs = image_tensor(first, self.device)
        t, b = prior_tensors(prior, thermal.shape, self.device)
        out = self.model(ir, vis, t, b, fs, self.steps, self.noise(thermal.shape))
        return out[0, 0].float().cpu().numpy()

    def _pack_conditions(self, thermal, visible_y, prior, first):
        """
        Lay out the denoiser's inputs on the CPU with numpy and OpenCV: ``(packed, hp)``.

        ``packed`` is (1, 6, Hp, Wp): channel 0 left for ``x_t``, then the five condition
        planes of :meth:`RefinerNet.conditions`, padded alike, in one buffer kept per frame
        size; ``hp`` the highpass bands of thermal and visible (OpenCV). On the CPU torch's
        concatenation, padding and pooling operators cost about 8 ms a frame at 640x512 for
        the same values. Shared by the torch and ONNX Runtime refiners.
        """
        targets, boundaries = prior_planes(prior, thermal.shape)
        packed = self._packed = pack_planes((thermal, visible_y, targets, boundaries, first),
                                            PAD_MULTIPLE, lead=1, out=self._packed)
        return packed, highpass_planes(packed[0, 1:3])[None]

    def _refine_cpu(self, thermal, visible_y, prior, first) -> np.ndarray:
        """Compute :meth:`RefinerNet.forward` over the conditions of :meth:`_pack_conditions`."""
        model = self.model
        h, w = thermal.shape
        packed, hp = self._pack_conditions(thermal, visible_y, prior, first)
        hp = torch.from_numpy(hp)
        inputs = torch.from_numpy(packed)
        if model.net.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        out = model.sample(inputs[:, 1:], (h, w), self.steps, self.noise(thermal.shape),
                           lambda x, t: model.denoise(x, t, None, hp, inputs))
        return out[0, 0].numpy()


def load_refiner(path, steps: int, seed: int = 0, device: str = 'cpu') -> DiffusionRefiner:
    model, payload = load_weights(path, KIND, RefinerNet.from_arch)
    return DiffusionRefiner(model, steps, seed, device, payload.get('info'))
