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
A slow prior (SAM) off the critical path: its own thread, newest frame only, never waited for.

    worker = AsyncPriorWorker(segmenter, rate_hz=2.0, timeout_s=30.0)
    worker.submit(thermal, visible_bgr, stamp)   # every frame; replaces a frame not yet taken
    state = worker.poll()                        # every frame; returns at once
    if state.prior is not None and state.healthy: ...
    worker.close()                               # stops and joins the thread, bounded

The thread starts a computation at most ``rate_hz`` times a second, always on the newest frame
submitted. A computation that raises, or that runs longer than ``timeout_s``, is a failure; the
next attempt then waits an exponential back-off (``backoff_base_s`` doubling per consecutive
failure, at most ``backoff_max_s``), and a success resets it.

A Python thread cannot be killed, so stopping is cooperative: when a computation is overdue, and
on ``close()``, the worker calls ``compute.request_cancel()`` if the computation has one
(:class:`sgdfuse_ros.prior.sam.SamSegmenter` stops before its next layer); an overdue result
that comes anyway is thrown away. Workers still running at interpreter exit are cancelled and
waited for by an ``atexit`` hook, so an unclosed pipeline does not leave torch running in a
dying process.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
import logging
import threading
import time
from typing import Callable, Optional
import weakref

from ..errors import error_line

log = logging.getLogger('sgdfuse_ros')


def backoff_delay(failures: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: 0, base, 2 base, ... max."""
    return 0.0 if failures <= 0 else min(base_s * 2 ** (failures - 1), max_s)


_LIVE_WORKERS: 'weakref.WeakSet' = weakref.WeakSet()
EXIT_WAIT_S = 60.0  # at interpreter exit, wait this long for a cancelled computation to stop


@atexit.register
def _close_live_workers() -> None:
    """
    Cancel the live workers and wait for them at interpreter exit.

    A daemon thread still inside torch when the interpreter finalises aborts the process
    ("terminate called without an active exception").
    """
    for worker in list(_LIVE_WORKERS):
        worker.close(timeout_s=EXIT_WAIT_S)


@dataclass
class WorkerState:
    """What a frame needs to know about the worker, read without waiting for it."""

    prior: object = None        # newest successful result (None before the first)
    stamp: float = 0.0          # clock time of the frame that result was computed for
    healthy: bool = True        # False after a failure or during an overdue computation
    last_error: str = ''        # why it is unhealthy (or the last failure)


class AsyncPriorWorker:
    def __init__(self, compute: Callable, rate_hz: float, timeout_s: float,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, name: str = 'sam-prior'):
        self.compute = compute
        self.period_s = 1.0 / float(rate_hz)
        self.timeout_s = float(timeout_s)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.clock = clock
        self._cond = threading.Condition()
        self._pending = None            # (args, stamp) of the newest frame not yet taken
        self._stop = False
        self._result = None             # (prior, stamp)
        self._running_since = None      # clock time the current computation started
        self._running_overdue = False   # the current computation has been declared a timeout
        self._next_start = 0.0
        self._consecutive_failures = 0
        self._healthy = True
        self.runs = 0                   # successful computations
        self.attempts = 0               # computations started
        self.failures = 0               # raised + timed out
        self.timeouts = 0
        self.last_error = ''
        self.last_run_s = 0.0           # duration of the last finished computation
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        _LIVE_WORKERS.add(self)

    # --- called from the frame thread (never blocks on the computation) ------------------------
    def submit(self, *args, stamp: Optional[float] = None) -> None:
        with self._cond:
            self._pending = (args, self.clock() if stamp is None else stamp)
            self._cond.notify()

    def poll(self) -> WorkerState:
        with self._cond:
            self._check_overdue()
            prior, stamp = self._result if self._result is not None else (None, 0.0)
            return WorkerState(prior, stamp, self._healthy, self.last_error)

    @property
    def backoff_s(self) -> float:
        return backoff_delay(self._consecutive_failures, self.backoff_base_s, self.backoff_max_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def busy(self) -> bool:
        return self._running_since is not None

    def close(self, timeout_s: float = 2.0) -> bool:
        """
        Stop the thread; True if it ended within ``timeout_s``.

        False: it is stuck inside a computation, left to finish as a daemon thread and ignored.
        """
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            busy = self._running_since is not None
        if busy:
            self._request_cancel()
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # stays in _LIVE_WORKERS: the exit hook waits for it
            log.warning('SAM prior worker still inside a computation after %.1f s; it was '
                        'cancelled and ends at its next layer (daemon thread)', timeout_s)
            return False
        _LIVE_WORKERS.discard(self)
        return True

    # --- internals -------------------------------------------------------------------------------
    def _request_cancel(self) -> None:
        cancel = getattr(self.compute, 'request_cancel', None)
        if cancel is not None:
            try:
                cancel()
            except Exception as err:  # pragma: no cover - a broken compute object
                log.debug('request_cancel failed: %s', err)

    def _check_overdue(self) -> None:  # with the lock held
        if self._running_since is None or self._running_overdue:
            return
        if self.clock() - self._running_since > self.timeout_s:
            self._running_overdue = True
            self._fail(f'timeout: no prior after {self.timeout_s:g} s (prior.sam.timeout_s)',
                       timeout=True)
            self._request_cancel()

    def _fail(self, message: str, timeout: bool = False) -> None:  # with the lock held
        self.failures += 1
        self.timeouts += int(timeout)
        self._consecutive_failures += 1
        self._healthy = False
        self.last_error = message
        log.warning('SAM prior failed (%s); thermal fallback, retry in %.1f s', message,
                    self.backoff_s)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    wait = self._next_start - self.clock()
                    if self._pending is not None and wait <= 0:
                        break
                    self._cond.wait(timeout=wait if wait > 0 else None)
                if self._stop:
                    return
                args, stamp = self._pending
                self._pending = None
                started = self.clock()
                self._running_since, self._running_overdue = started, False
                self.attempts += 1
            error, prior = None, None
            try:
                prior = self.compute(*args)
            except Exception as err:  # the worker must survive anything the model throws
                error = error_line(err)
            with self._cond:
                finished = self.clock()
                self.last_run_s = finished - started
                if self._stop:
                    self._running_since = None
                    return
                if self._running_overdue:
                    pass  # counted (and cancelled) when it became overdue; result thrown away
                elif error is not None:
                    self._fail(error)
                elif self.last_run_s > self.timeout_s:  # finished late without anyone polling
                    self._fail(f'timeout: prior took {self.last_run_s:.1f} s '
                               f'(prior.sam.timeout_s={self.timeout_s:g})', timeout=True)
                else:
                    self.runs += 1
                    self._result = (prior, stamp)
                    self._consecutive_failures = 0
                    self._healthy = True
                self._running_since, self._running_overdue = None, False
                delay = self.backoff_s if self._consecutive_failures else self.period_s
                self._next_start = (finished if self._consecutive_failures else started) + delay
