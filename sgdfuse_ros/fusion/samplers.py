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
Samplers: plain functions over a denoiser ``denoise(x_t, t) -> x0_hat`` (images in [-1, 1]).

Only arithmetic operators touch the images, so they run on torch tensors and numpy arrays alike
(the ONNX refiner samples in numpy).

The refiner does SDEdit-style refinement: it noises the first-stage result to a moderate
``t_start`` and walks back to t = 0 with K deterministic DDIM steps (eta = 0):

    x_T   = sqrt(abar_T) * first + sqrt(1 - abar_T) * eps                  (sdedit_start)
    x0^   = denoise(x_t, t)
    eps^  = (x_t - sqrt(abar_t) * x0^) / sqrt(1 - abar_t)
    x_t'  = sqrt(abar_t') * x0^ + sqrt(1 - abar_t') * eps^                 (ddim_step)

and returns the last ``x0^``. With a fixed noise tensor (refiner.seed) the result is
deterministic.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .schedules import NoiseSchedule
from .schedules import sampling_timesteps


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
