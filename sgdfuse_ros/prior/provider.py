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
The prior source for ``prior.source: sam``: when SAM runs, and what a frame gets meanwhile.

- ``prior.every_frame: true``: SAM runs synchronously for every frame (deterministic
  evaluation); the frame waits for it.
- ``prior.every_frame: false``: SAM runs in an :class:`AsyncPriorWorker` thread at
  ``prior.rate_hz`` on the newest frame; each frame immediately gets the newest SAM prior,
  resized to the frame, with ``age_s`` = seconds since the frame SAM saw.

Either way a frame gets the thermal fallback prior (source 'thermal') until the first SAM prior
exists, when the newest one is older than ``prior.max_age_s``, after a SAM failure (exception,
or longer than ``prior.sam.timeout_s``) until SAM succeeds again (retries back off
exponentially), and always when SAM could not be loaded (``prior.on_sam_error: fallback``).
With ``prior.on_sam_error: error`` a SAM failure raises instead. Every change of the active
source is logged once; :meth:`PriorProvider.stats` gives the counters for diagnostics.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import numpy as np

from .format import SemanticPrior
from .worker import AsyncPriorWorker, backoff_delay
from ..errors import error_line, SgdfuseError

log = logging.getLogger('sgdfuse_ros')
WAITING = 'waiting for the first SAM prior'


class PriorProvider:
    def __init__(self, compute: Optional[Callable], fallback: Callable, *,
                 every_frame: bool = False, rate_hz: float = 2.0, max_age_s: float = 2.0,
                 timeout_s: float = 30.0, on_error: str = 'fallback', unavailable: str = '',
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.compute = compute
        self.fallback = fallback
        self.every_frame = bool(every_frame)
        self.max_age_s = float(max_age_s)
        self.on_error = on_error
        self.clock = clock
        self.backoff_base_s, self.backoff_max_s = float(backoff_base_s), float(backoff_max_s)
        self.frames = 0
        self.fallback_frames = 0
        self.last_age_s = 0.0
        # unavailable from the start: the builder's warning said so, the fallback is active
        self.active = 'thermal' if unavailable else ''
        self.unavailable = unavailable
        self._lock = threading.Lock()
        # synchronous mode keeps its own counters; the worker keeps them in asynchronous mode
        self._sync = {'runs': 0, 'failures': 0, 'last_error': unavailable, 'consecutive': 0,
                      'retry_at': 0.0, 'last_run_s': 0.0}
        self.worker = None
        if compute is not None and not self.every_frame:
            self.worker = AsyncPriorWorker(compute, rate_hz, timeout_s, backoff_base_s,
                                           backoff_max_s, clock)

    @classmethod
    def from_config(cls, compute, fallback, config: dict, **overrides) -> 'PriorProvider':
        options = {'every_frame': config['prior.every_frame'],
                   'rate_hz': config['prior.rate_hz'],
                   'max_age_s': config['prior.max_age_s'],
                   'timeout_s': config['prior.sam.timeout_s'],
                   'on_error': config['prior.on_sam_error']}
        options.update(overrides)
        return cls(compute, fallback, **options)

    # --- per frame -------------------------------------------------------------------------------
    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray = None,
                 visible_bgr: np.ndarray = None) -> SemanticPrior:
        with self._lock:
            self.frames += 1
            prior, reason = (None, self.unavailable or 'SAM not loaded')
            if self.compute is not None:
                if self.worker is not None:
                    prior, reason = self._from_worker(thermal, visible_bgr)
                else:
                    prior, reason = self._synchronous(thermal, visible_bgr)
            if prior is None:
                self.fallback_frames += 1
                prior = self.fallback(thermal, visible_y)
                self.last_age_s = 0.0
            self._note_source(prior.source, reason)
            return prior

    def _from_worker(self, thermal, visible_bgr):
        now = self.clock()
        self.worker.submit(np.array(thermal, np.float32, copy=True),
                           None if visible_bgr is None else np.array(visible_bgr, copy=True),
                           stamp=now)
        state = self.worker.poll()
        if not state.healthy:
            if self.on_error == 'error':
                raise SgdfuseError(f'SAM prior failed: {state.last_error} '
                                   '(prior.on_sam_error=error)')
            return None, state.last_error
        if state.prior is None:
            return None, WAITING
        age = max(0.0, now - state.stamp)
        if age > self.max_age_s:
            return None, f'SAM prior is {age:.1f} s old (prior.max_age_s={self.max_age_s:g})'
        self.last_age_s = age
        prior = state.prior.resized(thermal.shape)
        if prior is state.prior:  # same size: do not share one object's metadata between frames
            prior = SemanticPrior(prior.labels, prior.targets, prior.boundaries, prior.source,
                                  prior.stamp)
        prior.age_s = age
        return prior, ''

    def _synchronous(self, thermal, visible_bgr):
        sync = self._sync
        now = self.clock()
        if now < sync['retry_at']:
            return None, f"{sync['last_error']}; retrying in {sync['retry_at'] - now:.1f} s"
        try:
            prior = self.compute(thermal, visible_bgr)
        except SgdfuseError:
            raise
        except Exception as err:
            sync['failures'] += 1
            sync['consecutive'] += 1
            sync['last_error'] = error_line(err)
            if self.on_error == 'error':
                raise SgdfuseError(f"SAM prior failed: {sync['last_error']} "
                                   '(prior.on_sam_error=error)') from None
            delay = backoff_delay(sync['consecutive'], self.backoff_base_s, self.backoff_max_s)
            sync['retry_at'] = self.clock() + delay
            log.warning('SAM prior failed (%s); thermal fallback, retry in %.1f s',
                        sync['last_error'], delay)
            return None, sync['last_error']
        sync['runs'] += 1
        sync['consecutive'] = 0
        sync['last_run_s'] = self.clock() - now
        self.last_age_s = 0.0
        prior.age_s = 0.0
        return prior, ''

    def _note_source(self, source: str, reason: str) -> None:
        if source == self.active:
            return
        if source == 'sam':
            log.info('semantic prior source: sam')
        elif reason == WAITING:
            log.info('semantic prior source: %s (%s)', source, reason)
        else:
            log.warning('semantic prior source: %s (fallback: %s)', source, reason)
        self.active = source

    # --- diagnostics and shutdown ----------------------------------------------------------------
    def stats(self) -> dict:
        """
        Return the counters for diagnostics.

        frames, sam_runs (successful), sam_failures (raised or timed out), sam_timeouts,
        fallback_frames, last_error, active_source, prior_age_s, ...
        """
        out = {'mode': 'unavailable' if self.compute is None else
               ('every_frame' if self.every_frame else 'worker'),
               'frames': self.frames, 'fallback_frames': self.fallback_frames,
               'active_source': self.active, 'prior_age_s': self.last_age_s}
        if self.worker is not None:
            w = self.worker
            w.poll()  # declares an overdue computation as a timeout
            out.update(sam_runs=w.runs, sam_attempts=w.attempts, sam_failures=w.failures,
                       sam_timeouts=w.timeouts, last_error=w.last_error,
                       last_sam_s=w.last_run_s, backoff_s=w.backoff_s, worker_alive=w.alive,
                       worker_busy=w.busy)
        else:
            s = self._sync
            out.update(sam_runs=s['runs'], sam_attempts=s['runs'] + s['failures'],
                       sam_failures=s['failures'], sam_timeouts=0, last_error=s['last_error'],
                       last_sam_s=s['last_run_s'], worker_alive=False, worker_busy=False)
        return out

    def close(self, timeout_s: float = 2.0) -> None:
        if self.worker is not None:
            self.worker.close(timeout_s)
