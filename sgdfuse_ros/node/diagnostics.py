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
The node's ``/diagnostics`` content: a diagnostic_msgs/DiagnosticArray from a stats snapshot.

Four statuses, named like diagnostic_updater's tasks (``<node>: <task>``), so
``rqt_robot_monitor`` and ``diagnostic_aggregator`` group them under the node:

- ``inputs``: rate (Hz), received / published / dropped / rejected counts (by reason), pending
  frames and the age of the newest frame, for each camera topic and the camera info.
  WARN when a camera is silent while the node is active, or frames were rejected in the last
  few seconds.
- ``synchronisation``: pairs formed, and why unpaired frames were dropped (unmatched, late,
  duplicate, overflow). WARN when both cameras stream but no pair forms (stamps further apart
  than ``sync.slop``?), or none formed in the last few seconds (a camera repeating or
  rewinding its stamps).
- ``processing``: output rate, latency p50/p90 per pipeline stage (over the last
  ``diagnostics.window`` frames), frames dropped because the worker was busy, pipeline errors,
  prior source and age (and the SAM worker's failures, timeouts, back-off and last error),
  device, frames skipped for lack of memory and frames saved by a fallback (refiner failed,
  out-of-memory retry), and how the CPU is used: backend, ``thread_policy``, the thread count
  in use (with ``adaptive``: the candidates, switches, probes and the last measured cost per
  count) and OpenMP's wait policy. WARN when pipeline errors occur, frames were skipped or
  saved, or the prior is not the configured one; ERROR when the node is not active.
- ``alignment``: whether the two cameras still line up. Every ``diagnostics.alignment_every``
  fused pair is scored (edge agreement of the registered thermal and the visible image where the
  thermal camera sees, -1..1, at 160 pixels wide: well under a millisecond); values: the last
  score, the median of the last 5, the running level (the median of the first 20 scores, then
  following the recent median slowly while aligned), pairs checked and skipped (too little
  texture), warnings. WARN when the recent median falls below half the running level (a camera
  knocked out of place, a loose mount); it stays until the scores come back.

Values are strings, as the message requires.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from .. import messages
from ..transport.base import RELIABLE

OK, WARN, ERROR, STALE = 0, 1, 2, 3


SILENT_AFTER_S = 2.0   # an input with no frame for this long (while active) is reported
RECENT_S = 5.0         # the window of "rejected recently" (accounting.RATE_WINDOW_S)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'.rstrip('0').rstrip('.') if value == value else 'nan'
    return str(value)


def input_status(stats: dict) -> Tuple[int, str, List[Tuple[str, str]]]:
    values: List[Tuple[str, str]] = []
    problems = []
    active = stats['state'] == 'active'
    for source, counts in stats['inputs'].items():
        prefix = f'{source} '
        values += [(prefix + 'topic', counts['topic']),
                   (prefix + 'rate (Hz)', _fmt(counts['rate_hz'])),
                   (prefix + 'received', _fmt(counts['received'])),
                   (prefix + 'published', _fmt(counts['published'])),
                   (prefix + 'dropped', _fmt(sum(counts['dropped'].values()))),
                   (prefix + 'rejected', _fmt(sum(counts['rejected'].values()))),
                   (prefix + 'pending', _fmt(counts['pending']))]
        for reason, count in counts['rejected'].items():
            values.append((f'{prefix}rejected ({reason})', _fmt(count)))
        age = counts['last_age_s']
        values.append((prefix + 'last frame age (s)', 'never' if age is None else _fmt(age)))
        if active and (age is None or age > SILENT_AFTER_S):
            problems.append(f'no {source} images' + ('' if age is None else f' for {age:.1f} s'))
        recent = counts.get('rejected_recently', 0)
        if recent:
            problems.append(f'{recent} {source} frames rejected in the last '
                            f'{RECENT_S:g} s')
    info = stats['camera_info']
    values += [('camera_info topic', info['topic']),
               ('camera_info rate (Hz)', _fmt(info['rate_hz'])),
               ('camera_info received', _fmt(info['received']))]
    if not active:
        return OK, f"{stats['state']}: not subscribed", values
    if problems:
        return WARN, '; '.join(problems), values
    rates = ', '.join(f"{s} {c['rate_hz']:.1f} Hz" for s, c in stats['inputs'].items())
    return OK, rates, values


def sync_status(stats: dict) -> Tuple[int, str, List[Tuple[str, str]]]:
    values = [('slop (s)', _fmt(stats['config']['sync.slop'])),
              ('queue size', _fmt(stats['config']['sync.queue_size'])),
              ('resets (stamps jumped back)', _fmt(stats['output']['sync_resets']))]
    for source, counts in stats['inputs'].items():
        for reason in ('unmatched', 'late', 'duplicate', 'overflow'):
            values.append((f'{source} dropped ({reason})', _fmt(counts['dropped'][reason])))
    inputs = stats['inputs'].values()
    streaming = all(c['rate_hz'] > 0 for c in inputs)
    paired = sum(c['published'] + c['dropped']['busy'] + c['rejected']['pipeline']
                 for c in inputs) // 2
    values.insert(0, ('pairs', _fmt(paired)))
    if stats['state'] == 'active' and streaming and paired == 0 and \
            all(c['received'] >= 10 for c in inputs):
        return (WARN, 'both cameras stream but no pair formed: are their stamps more than '
                      'sync.slop apart?', values)
    recent = stats['output'].get('pairs_recent')
    if stats['state'] == 'active' and recent == 0 and \
            all(c['rate_hz'] >= 1.0 and c['received'] >= 10 for c in inputs):
        reasons = {reason: sum(c['dropped'][reason] for c in inputs)
                   for reason in ('unmatched', 'late', 'duplicate', 'overflow')}
        worst = max(reasons, key=reasons.get)
        return (WARN, f'both cameras stream but no pair formed in the last {RECENT_S:g} s '
                      f'(most drops: {worst}; stamps repeated, rewound or apart?)', values)
    return OK, f'{paired} pairs', values


def first_stage_label(config: dict) -> str:
    """Name the first stage that runs: laplacian, or network with the weights it loaded."""
    kind = config['first_stage.type']
    if kind != 'network':
        return kind
    if config['first_stage.weights']:
        return f"network ({config['first_stage.weights']})"
    return f"network (tuned for {config['first_stage.tuned_for']})"


def processing_status(stats: dict) -> Tuple[int, str, List[Tuple[str, str]]]:
    output = stats['output']
    prior = stats['prior']
    busy = sum(c['dropped']['busy'] for c in stats['inputs'].values()) // 2
    values = [('device', stats['device']),
              ('state', stats['state']),
              ('output rate (Hz)', _fmt(output['rate_hz'])),
              ('published', _fmt(output['published'])),
              ('overlay published', _fmt(output['overlay_published'])),
              ('dropped (worker busy)', _fmt(busy)),
              ('pipeline errors', _fmt(output['pipeline_errors'])),
              ('prior source', prior.get('source') or 'none yet'),
              ('prior age (s)', _fmt(prior.get('age_s', 0.0))),
              ('configured prior', stats['config']['prior.source']),
              ('first stage', first_stage_label(stats['config'])),
              ('refiner steps', _fmt(stats['config']['refiner.steps']))]
    oom = output.get('out_of_memory', 0)
    recovered = output.get('recovered') or {}
    values.append(('skipped (out of memory)', _fmt(oom)))
    values += [(f'recovered ({tag})', _fmt(n)) for tag, n in sorted(recovered.items())]
    values.append(('worker errors', _fmt(output.get('worker_errors', 0))))
    for key, label in (('sam_runs', 'SAM runs'), ('sam_failures', 'SAM failures'),
                       ('sam_timeouts', 'SAM timeouts'), ('backoff_s', 'SAM retry back-off (s)'),
                       ('fallback_frames', 'fallback prior frames'),
                       ('last_error', 'SAM last error')):
        if key in prior:
            values.append((label, _fmt(prior[key]) if prior[key] != '' else 'none'))
    values += compute_values(stats.get('compute') or {})
    for stage, summary in stats['latency_ms'].items():
        values.append((f'latency {stage} p50 (ms)', _fmt(summary['p50'])))
        values.append((f'latency {stage} p90 (ms)', _fmt(summary['p90'])))
    if stats['state'] != 'active':
        return ERROR, f"{stats['state']}: not processing", values
    problems = []
    if output['pipeline_errors']:
        problems.append(f"{output['pipeline_errors']} pairs could not be fused")
    if oom:
        problems.append(f'{oom} pairs skipped: out of memory')
    if recovered:
        problems.append(f'{sum(recovered.values())} pairs saved by a fallback (' +
                        ', '.join(f'{tag} {n}' for tag, n in sorted(recovered.items())) + ')')
    configured = stats['config']['prior.source']
    if prior.get('source') and configured != 'none' and prior['source'] != configured:
        why = f" ({prior['last_error']})" if prior.get('last_error') else ''
        problems.append(f"prior from {prior['source']} instead of {configured}{why}")
    end_to_end = stats['latency_ms'].get('end_to_end')
    summary = f"{output['rate_hz']:.1f} Hz" + (
        f", latency p50 {end_to_end['p50']:.1f} ms" if end_to_end else '')
    if problems:
        return WARN, summary + '; ' + '; '.join(problems), values
    return OK, summary, values


COMPUTE_KEYS = (('backend', 'backend'), ('thread_policy', 'thread policy'),
                ('threads', 'threads'), ('candidates', 'thread candidates'),
                ('switches', 'thread switches'), ('probes', 'thread probes'),
                ('omp_wait_policy', 'omp wait policy'))


def alignment_status(stats: dict) -> Tuple[int, str, List[Tuple[str, str]]]:
    info = stats.get('alignment') or {}
    every = stats['config'].get('diagnostics.alignment_every', 0)
    values = [('checked every N pairs', _fmt(every)),
              ('last score', _fmt(info['last']) if info.get('last') is not None else 'none'),
              ('recent median', _fmt(info['recent']) if info.get('recent') is not None
               else 'none'),
              ('running level', _fmt(info['reference']) if info.get('reference') is not None
               else 'not yet'),
              ('pairs checked', _fmt(info.get('checked', 0))),
              ('pairs skipped (no texture)', _fmt(info.get('skipped', 0))),
              ('warnings', _fmt(info.get('warnings', 0)))]
    if not every:
        return OK, 'off (diagnostics.alignment_every = 0)', values
    if info.get('reference') is None:
        left = info.get('warmup_left', 0)
        return OK, f'learning the running level ({left} scores to go)', values
    if info.get('dropped'):
        return (WARN, f"alignment dropped: recent {info['recent']:.2f} vs running level "
                      f"{info['reference']:.2f}; a camera may have moved (sgdfuse register)",
                values)
    return (OK, f"aligned: recent {info['recent']:.2f}, running level {info['reference']:.2f}",
            values)


def compute_values(compute: dict) -> List[Tuple[str, str]]:
    """Backend and thread policy (``FusionPipeline.compute_stats``) as key/value pairs."""
    values = []
    for key, label in COMPUTE_KEYS:
        if key in compute:
            value = compute[key]
            if isinstance(value, (list, tuple)):
                value = ', '.join(str(v) for v in value)
            values.append((label, _fmt(value)))
    for count, cost in sorted((compute.get('ms_per_megapixel') or {}).items()):
        values.append((f'cost with {count} threads (ms per megapixel)', _fmt(cost)))
    return values


def diagnostic_array(stats: dict, stamp_ns: int):
    """Build the DiagnosticArray for one stats snapshot (see :meth:`FusionNodeCore.stats`)."""
    store = messages.typestore().types
    status_type = store['diagnostic_msgs/msg/DiagnosticStatus']
    key_value = store['diagnostic_msgs/msg/KeyValue']
    name = stats['node'].lstrip('/')
    statuses = []
    for task, build in (('inputs', input_status), ('synchronisation', sync_status),
                        ('processing', processing_status), ('alignment', alignment_status)):
        level, message, values = build(stats)
        statuses.append(status_type(
            level=level, name=f'{name}: {task}', message=message,
            hardware_id=str(stats['device']),
            values=[key_value(key=k, value=v) for k, v in values]))
    header = messages.make_header(int(stamp_ns), '')
    return store[messages.DIAGNOSTIC_ARRAY](header=header, status=statuses)


def as_dict(array) -> Dict[str, Dict[str, Any]]:
    """Convert a DiagnosticArray to {status name: {'level', 'message', 'values': {key: value}}}."""
    return {s.name: {'level': int(s.level), 'message': s.message,
                     'values': {kv.key: kv.value for kv in s.values}} for s in array.status}


class DiagnosticsPublisher:
    """``/diagnostics`` every ``period_s``: the array ``make()`` returns (the node's stats)."""

    def __init__(self, transport, period_s: float, make: Callable[[], Any],
                 on_error: Callable[[Exception], None]):
        self.transport, self.make, self.on_error = transport, make, on_error
        self.publisher = transport.create_publisher(messages.DIAGNOSTICS_TOPIC,
                                                    messages.DIAGNOSTIC_ARRAY, RELIABLE)
        self.timer = None
        self.set_period(period_s)

    def set_period(self, period_s: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.transport.create_timer(period_s, self.publish)

    def publish(self) -> None:
        publisher = self.publisher
        if publisher is None:
            return
        try:  # a timer callback: nothing may escape into the executor
            publisher.publish(self.make())
        except Exception as err:
            self.on_error(err)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
