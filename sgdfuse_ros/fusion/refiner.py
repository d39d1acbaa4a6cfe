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
result (:func:`refine`); ``refiner.seed`` fixes the noise, so output is reproducible. On the CPU
its inputs are laid out once per frame with numpy and OpenCV (:func:`pack_planes`,
:func:`highpass_planes`), for the torch and the ONNX Runtime refiner alike.
The ONNX Runtime version (the denoiser call as a graph, the loop outside) and its export live in
:mod:`sgdfuse_ros.onnx.fusion_networks`.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbone import LowResUNet, pad_to_multiple
from .tensors import highpass, image_tensor, prior_tensors, TorchStage, upsample_to
from .weights import load_weights
from ..errors import ConfigError
from ..prior.format import prior_planes

KIND = 'refiner'
PAD_MULTIPLE = 8  # the denoiser's inputs are padded to it (RefinerNet.conditions)
DEFAULT_ARCH = {'c1': 24, 'c2': 32, 'blocks': 2, 'temb': 16, 'schedule': 'cosine', 'T': 1000,
                't_start': 250}


# --- noise schedules -----------------------------------------------------------------------------
#
# Noise schedules as data (k-diffusion style).
#
# A schedule is its array of cumulative signal levels ``alphas_cumprod[t]`` for t = 0..T-1, from
# which everything else is derived.
#
# Forward (noising) process, variance preserving, on images scaled to [-1, 1]:
#
#     x_t = sqrt(abar_t) * x_0 + sqrt(1 - abar_t) * eps,   eps ~ N(0, I)
#
# ``sigma_t = sqrt((1 - abar_t) / abar_t)`` is the equivalent variance-exploding noise level
# (k-diffusion's ``sigmas``). Two families: ``linear`` betas (DDPM) and ``cosine`` (Nichol &
# Dhariwal); the refiner is trained with the cosine one (named in its weights file).


@dataclass(frozen=True)
class NoiseSchedule:
    name: str
    alphas_cumprod: np.ndarray  # float64 (T,), decreasing from ~1 towards 0

    @property
    def num_steps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def sigmas(self) -> np.ndarray:
        a = self.alphas_cumprod
        return np.sqrt((1.0 - a) / a)

    def signal(self, t: int) -> float:
        """Return sqrt(abar_t)."""
        return float(math.sqrt(self.alphas_cumprod[int(t)]))

    def noise(self, t: int) -> float:
        """Return sqrt(1 - abar_t)."""
        return float(math.sqrt(1.0 - self.alphas_cumprod[int(t)]))

    def describe(self) -> dict:
        return {'schedule': self.name, 'T': self.num_steps}


def linear_schedule(num_steps: int = 1000, beta_start: float = 1e-4,
                    beta_end: float = 0.02) -> NoiseSchedule:
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return NoiseSchedule('linear', np.cumprod(1.0 - betas))


def cosine_schedule(num_steps: int = 1000, s: float = 0.008) -> NoiseSchedule:
    t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
    return NoiseSchedule('cosine', np.cumprod(1.0 - betas))


SCHEDULES = {'linear': linear_schedule, 'cosine': cosine_schedule}


def make_schedule(name: str, num_steps: int = 1000) -> NoiseSchedule:
    try:
        return SCHEDULES[name](int(num_steps))
    except KeyError:
        raise ConfigError(f"unknown noise schedule '{name}' "
                          f"(known: {', '.join(SCHEDULES)})") from None


def sampling_timesteps(t_start: int, steps: int) -> List[int]:
    """
    Return ``steps`` evenly spaced timesteps from ``t_start`` down, descending.

    Exclusive of 0: t_start=240, steps=2 -> [240, 120]; the last denoiser call returns x_0
    directly.
    """
    if steps < 1:
        raise ConfigError(f'refiner steps must be >= 1, got {steps}')
    if t_start < steps:
        raise ConfigError(f't_start {t_start} is smaller than the number of steps {steps}')
    return [int(round(t_start * (steps - i) / steps)) for i in range(steps)]


# --- samplers ------------------------------------------------------------------------------------
#
# Samplers: plain functions over a denoiser ``denoise(x_t, t) -> x0_hat`` (images in [-1, 1]).
#
# Only arithmetic operators touch the images, so they run on torch tensors and numpy arrays alike
# (the ONNX refiner samples in numpy).
#
# The refiner does SDEdit-style refinement: it noises the first-stage result to a moderate
# ``t_start`` and walks back to t = 0 with K deterministic DDIM steps (eta = 0):
#
#     x_T   = sqrt(abar_T) * first + sqrt(1 - abar_T) * eps                  (sdedit_start)
#     x0^   = denoise(x_t, t)
#     eps^  = (x_t - sqrt(abar_t) * x0^) / sqrt(1 - abar_t)
#     x_t'  = sqrt(abar_t') * x0^ + sqrt(1 - abar_t') * eps^                 (ddim_step)
#
# and returns the last ``x0^``. With a fixed noise tensor (refiner.seed) the result is
# deterministic.


def sdedit_start(x0: torch.Tensor, t: int, schedule: NoiseSchedule,
                 noise: torch.Tensor) -> torch.Tensor:
    return schedule.signal(t) * x0 + schedule.noise(t) * noise


def ddim_step(x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, t_next: int,
              schedule: NoiseSchedule) -> torch.Tensor:
    eps_hat = (x_t - schedule.signal(t) * x0_hat) / max(schedule.noise(t), 1e-8)
    return schedule.signal(t_next) * x0_hat + schedule.noise(t_next) * eps_hat


def sample_ddim(denoise: Callable[[torch.Tensor, int], torch.Tensor], x_start: torch.Tensor,
                timesteps: Sequence[int], schedule: NoiseSchedule) -> torch.Tensor:
    """K = len(timesteps) denoiser calls from ``x_start`` (at timesteps[0]) to x_0."""
    x = x_start
    x0_hat = x_start
    for i, t in enumerate(timesteps):
        x0_hat = denoise(x, int(t))
        if i + 1 < len(timesteps):
            x = ddim_step(x, x0_hat, int(t), int(timesteps[i + 1]), schedule)
    return x0_hat


def refine(denoise, first: torch.Tensor, steps: int, t_start: int, schedule: NoiseSchedule,
           noise: torch.Tensor) -> torch.Tensor:
    """Refine with SDEdit + DDIM: ``first`` in [-1, 1] -> x_0 in [-1, 1] (unclamped)."""
    timesteps = sampling_timesteps(t_start, steps)
    return sample_ddim(denoise, sdedit_start(first, timesteps[0], schedule, noise), timesteps,
                       schedule)


# --- the inputs laid out on the CPU --------------------------------------------------------------


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


# --- the refiner ---------------------------------------------------------------------------------


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
        and the exported ONNX graph (:mod:`sgdfuse_ros.onnx.fusion_networks`) both call it.
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
