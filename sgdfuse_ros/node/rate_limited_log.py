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
"""Warnings that cannot flood the log: one per key and period, with a count of the rest."""

from __future__ import annotations

from collections import Counter
import time
from typing import Callable, Dict


class RateLimitedLog:
    """Warnings about the same thing at most once per ``period_s``, with a count of the rest."""

    def __init__(self, logger, period_s: float, clock: Callable[[], float] = time.monotonic):
        self.logger, self.period_s, self.clock = logger, float(period_s), clock
        self._last: Dict[str, float] = {}
        self._suppressed: Counter = Counter()

    def warning(self, key: str, text: str) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] += 1
            return False
        more = self._suppressed.pop(key, 0)
        self._last[key] = now
        self.logger.warning(text + (f' ({more} more since the last warning)' if more else ''))
        return True
