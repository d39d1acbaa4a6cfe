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
The node's books: what happened to every input frame, and how fast.

Per input, at every moment::

    received = published + dropped (unmatched, late, duplicate, overflow, busy, stopped,
               publish_failed, out_of_memory) + rejected (encoding, decode, size, pipeline)
               + pending

where ``pending`` counts frames waiting in the synchroniser or in the worker's hands (the
synchroniser keeps its own counters, merged in :meth:`NodeStatistics.snapshot`).
:func:`accounting_errors` checks that the books balance. Its meters: :class:`RateMeter` (events
per second over a window) and :class:`LatencyWindow` (per-stage p50/p90). None of these is
thread-safe by itself: the node core calls them with its lock held.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Optional

from ..eval.scoring import percentile_summary
from ..intake import Pair, ROLE_LABELS, ROLES, short

DROP_REASONS = ('unmatched', 'late', 'duplicate', 'overflow', 'busy', 'stopped', 'publish_failed',
                'out_of_memory')
REJECT_REASONS = ('encoding', 'decode', 'size', 'pipeline')
SYNC_DROP_REASONS = ('unmatched', 'late', 'duplicate', 'overflow')  # counted by the synchroniser
# the parameters stats() repeats, so that diagnostics say what the numbers were measured with
STATS_CONFIG = ('prior.source', 'first_stage.type', 'first_stage.weights',
                'first_stage.tuned_for', 'refiner.steps', 'sync.slop', 'sync.queue_size',
                'diagnostics.period_s', 'diagnostics.alignment_every')
RATE_WINDOW_S = 5.0           # rates are measured over this many seconds
PRIOR_HEALTH_KEYS = ('sam_runs', 'sam_failures', 'sam_timeouts', 'fallback_frames', 'backoff_s',
                     'last_error', 'worker_alive')


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


@dataclass
class InputCounters:
    """One input's counts outside the synchroniser."""

    received: int = 0
    published: int = 0
    in_flight: int = 0                       # in the mailbox or in the worker's hands
    dropped: Counter = field(default_factory=Counter)   # busy, stopped, publish_failed
    rejected: Counter = field(default_factory=Counter)


class NodeStatistics:
    """Counters, rates and latency windows of one node since its last configure."""

    def __init__(self, latency_window: int):
        self.inputs = {name: InputCounters() for name in ROLES}
        self.rates = {name: RateMeter() for name in ROLES + ('camera_info', 'output')}
        self.rejections = {name: RateMeter() for name in ROLES}
        self.camera_info_received = 0
        self.pairs_published = 0
        self.overlays_published = 0
        self.latency = LatencyWindow(latency_window)
        self.prior = {'source': '', 'age_s': 0.0}
        self.sync_resets = 0
        self.pipeline_errors = 0
        self.worker_errors = 0
        self.recovered: Counter = Counter()     # faults the pipeline survived, by tag
        self.pairs = RateMeter()                # pairs formed by the synchroniser

    def receive(self, role: str, now: float) -> None:
        self.inputs[role].received += 1
        self.rates[role].tick(now)

    def receive_camera_info(self, now: float) -> None:
        self.camera_info_received += 1
        self.rates['camera_info'].tick(now)

    def reject(self, role: str, reason: str, now: float) -> None:
        self.inputs[role].rejected[reason] += 1
        self.rejections[role].tick(now)

    def offer(self, pair: Pair, now: float) -> None:
        """Count a pair handed to the worker (in flight until settled)."""
        for frame in (pair.thermal, pair.visible):
            self.inputs[frame.role].in_flight += 1
        self.pairs.tick(now)

    def settle(self, pair: Optional[Pair], reason: str, rejected: bool = False) -> None:
        """Count an in-flight pair as dropped (or rejected) for ``reason``; once per pair."""
        if pair is None or pair.settled:
            return
        pair.settled = True
        for frame in (pair.thermal, pair.visible):
            counters = self.inputs[frame.role]
            counters.in_flight -= 1
            (counters.rejected if rejected else counters.dropped)[reason] += 1

    def publish(self, pair: Pair, result, overlay: bool, started: float, fused_at: float,
                done: float) -> None:
        """Count a published pair and record its stage timings (monotonic seconds in)."""
        pair.settled = True
        for frame in (pair.thermal, pair.visible):
            counters = self.inputs[frame.role]
            counters.in_flight -= 1
            counters.published += 1
        self.pairs_published += 1
        self.recovered.update(getattr(result, 'recovered', None) or ())
        self.overlays_published += int(overlay)
        self.rates['output'].tick(done)
        for stage, ms in result.timings.items():
            self.latency.add(stage, ms)
        self.latency.add('wait', (started - pair.matched_at) * 1000.0)
        self.latency.add('publish', (done - fused_at) * 1000.0)
        self.latency.add('end_to_end',
                         (done - max(pair.thermal.arrival, pair.visible.arrival)) * 1000.0)
        prior = result.prior
        self.prior = {'source': str(prior.source), 'age_s': float(prior.age_s)}

    def idle(self) -> bool:
        return all(c.in_flight == 0 for c in self.inputs.values())

    def snapshot(self, now: float, sync_stats: dict, topics: Dict[str, str],
                 prior_health: dict) -> dict:
        """Return the ``inputs``, ``camera_info``, ``output``, ``latency_ms``, ``prior`` parts."""
        inputs = {}
        for index, source in enumerate(ROLES):
            counters = self.inputs[source]
            sync_counts = sync_stats['thermal' if index == 0 else 'visible']
            dropped = dict.fromkeys(DROP_REASONS, 0)
            for reason in SYNC_DROP_REASONS:
                dropped[reason] = sync_counts[reason]
            for reason, count in counters.dropped.items():
                dropped[reason] += count
            rejected = {reason: counters.rejected.get(reason, 0) for reason in REJECT_REASONS}
            last = self.rates[source].last()
            inputs[ROLE_LABELS[source]] = {
                'topic': topics[source],
                'received': counters.received,
                'published': counters.published,
                'dropped': dropped,
                'rejected': rejected,
                'pending': sync_counts['pending'] + counters.in_flight,
                'rejected_recently': self.rejections[source].count(now),
                'rate_hz': round(self.rates[source].rate(now), 3),
                'last_age_s': None if last is None else round(now - last, 3),
            }
        last_info = self.rates['camera_info'].last()
        return {
            'inputs': inputs,
            'camera_info': {'topic': topics['camera_info'],
                            'received': self.camera_info_received,
                            'rate_hz': round(self.rates['camera_info'].rate(now), 3),
                            'last_age_s': None if last_info is None
                            else round(now - last_info, 3)},
            'output': {'published': self.pairs_published,
                       'overlay_published': self.overlays_published,
                       'rate_hz': round(self.rates['output'].rate(now), 3),
                       'pipeline_errors': self.pipeline_errors,
                       'worker_errors': self.worker_errors,
                       'out_of_memory': self.inputs['visible'].dropped.get('out_of_memory', 0),
                       'recovered': dict(self.recovered),
                       'pairs_recent': self.pairs.count(now),
                       'sync_resets': self.sync_resets},
            'latency_ms': self.latency.summary(),
            'prior': dict(self.prior, **{key: prior_health[key] for key in PRIOR_HEALTH_KEYS
                                         if key in prior_health}),
        }


def prior_health(pipeline) -> dict:
    """Return the pipeline's prior counters (the SAM provider's; empty for the other sources)."""
    prior_stats = getattr(pipeline, 'prior_stats', None)
    if not callable(prior_stats):
        return {}
    try:
        return prior_stats() or {}
    except Exception as err:
        return {'last_error': f'{type(err).__name__}: {short(err, 200)}'}


def compute_stats(pipeline) -> dict:
    """Return the backend and thread policy the pipeline reports (empty when it has none)."""
    stats = getattr(pipeline, 'compute_stats', None)
    return stats() if callable(stats) else {}


def accounting_errors(stats: dict) -> list:
    """Return the inputs whose counters do not add up (empty when the books balance)."""
    errors = []
    for source, counts in stats['inputs'].items():
        total = (counts['published'] + sum(counts['dropped'].values())
                 + sum(counts['rejected'].values()) + counts['pending'])
        if total != counts['received']:
            errors.append(f"{source}: received {counts['received']} != published + dropped + "
                          f'rejected + pending = {total}')
    return errors
