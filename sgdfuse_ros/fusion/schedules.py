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
Noise schedules as data (k-diffusion style).

A schedule is its array of cumulative signal levels ``alphas_cumprod[t]`` for t = 0..T-1, from
which everything else is derived.

Forward (noising) process, variance preserving, on images scaled to [-1, 1]:

    x_t = sqrt(abar_t) * x_0 + sqrt(1 - abar_t) * eps,   eps ~ N(0, I)

``sigma_t = sqrt((1 - abar_t) / abar_t)`` is the equivalent variance-exploding noise level
(k-diffusion's ``sigmas``). Two families: ``linear`` betas (DDPM) and ``cosine`` (Nichol &
Dhariwal); the refiner is trained with the cosine one (named in its weights file).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import List

import numpy as np

from ..errors import ConfigError


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
