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
How the node measures itself: event rates and per-stage latency windows.

Both are plain containers; the node core calls them with its lock held.
:func:`percentile_summary` is the one percentile summary of the package (latency windows, bag
replay reports, ``sgdfuse evaluate``) and of the benchmarks.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, Iterable, Optional, Sequence

import numpy as np

RATE_WINDOW_S = 5.0           # rates are measured over this many seconds


def percentile_summary(values: Iterable[float], keys: Sequence[str] = ('p50', 'p90'),
                       digits: Optional[int] = None) -> dict:
    """
    Summarise ``values`` as ``{key: number}``, each rounded to ``digits`` when given.

    Keys: ``pNN`` (the NN-th percentile, linear interpolation), ``median``, ``mean``, ``max``
    and ``n`` (the count, never rounded).
    """
    a = np.asarray(values if isinstance(values, (list, tuple, np.ndarray)) else list(values),
                   np.float64)
    out = {}
    for key in keys:
        if key == 'n':
            out[key] = int(a.size)
            continue
        if key == 'median':
            value = np.median(a)
        elif key == 'mean':
            value = a.mean()
        elif key == 'max':
            value = a.max()
        else:
            value = np.percentile(a, float(key[1:]))
        value = float(value)
        out[key] = round(value, digits) if digits is not None else value
    return out


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S, maxlen: int = 2000):
        self.window_s = window_s
        self.times: Deque[float] = deque(maxlen=maxlen)

    def tick(self, now: float) -> None:
        self.times.append(now)

    def rate(self, now: float) -> float:
        recent = [t for t in self.times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], recent[-1] - recent[0])
        return (len(recent) - 1) / span if span > 0 else 0.0

    def count(self, now: float) -> int:
        return sum(1 for t in self.times if now - t <= self.window_s)

    def last(self) -> Optional[float]:
        return self.times[-1] if self.times else None


class LatencyWindow:
    """The last ``size`` durations per stage, summarised as p50/p90 (milliseconds)."""

    def __init__(self, size: int = 100):
        self.size = int(size)
        self.samples: Dict[str, Deque[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        window = self.samples.get(stage)
        if window is None or window.maxlen != self.size:
            window = self.samples[stage] = deque(window or (), maxlen=self.size)
        window.append(float(ms))

    def summary(self) -> Dict[str, Dict[str, float]]:
        out = {}
        for stage, values in self.samples.items():
            if values:
                out[stage] = percentile_summary(values, ('p50', 'p90', 'n'), digits=3)
        return out
