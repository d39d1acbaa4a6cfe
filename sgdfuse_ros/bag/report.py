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
The replay report: ``report.json``, ``.md``, ``.html``, ``plot.png``, ``contact_sheet.png``.

``report.json`` holds everything (a row per frame: stamps, metrics, per-stage times), ``report.md``
is for people (with a table per frame: metrics and time), ``report.html`` is the same for a
browser, ``plot.png`` shows the distribution of each metric and the time per stage, and
``contact_sheet.png`` sampled frames (thermal | visible | fused | prior overlay), rows of equal
width (:mod:`sgdfuse_ros.eval.report_pages`).

The report accounts for every message it was given: for each camera topic,
``read = rejected + matched + unmatched + late + duplicate + overflow`` (rejected: the message
failed the node's input checks -- CDR, encoding, size, decode -- and never reached the
synchroniser; the rest are the synchroniser's counters), and
``pairs matched = fused + failed``. :meth:`ReplayReport.finish` checks both and raises
:class:`AccountingError` (a bug, not a user error) if a message went missing.
"""

from __future__ import annotations

from collections import Counter
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from .. import writing
from ..eval.metrics import HEADLINE_METRICS
from ..eval.report_pages import cell_text, run_plot
from ..eval.report_pages import contact_sheet as sheet_image, per_image_table, report_html
from ..eval.scoring import percentile_summary
from ..intake import all_rejected, ROLE_LABELS, ROLES

# the replay's cameras (intake.ROLES) as the report (JSON keys, tables) names them: after their
# topics (rgb/image_raw, rgb/camera_info), like the node's statistics; users' scripts read them
LABELS = {**ROLE_LABELS, 'visible_info': 'rgb_info', 'thermal_info': 'thermal_info'}
DROP_REASONS = ('unmatched', 'late', 'duplicate', 'overflow')
PIPELINE_STAGES = ('decode', 'register', 'prior', 'first_stage', 'refiner', 'colour', 'total')
REPLAY_STAGES = ('message_decode', 'metrics', 'write')
REPORT_FILES = ('report.json', 'report.md', 'report.html', 'plot.png', 'contact_sheet.png')
PANEL_HEIGHT = 320  # kept per sampled frame; the sheet scales its rows to one width
PANELS = ('thermal', 'visible', 'fused', 'prior overlay')


class AccountingError(RuntimeError):
    """Messages went missing between reading and reporting: a bug in the replay."""


def percentiles(values) -> Optional[dict]:
    if not values:
        return None
    return percentile_summary(values, ('p50', 'p90', 'p99', 'mean', 'max', 'n'))


def _finite_mean(values) -> Optional[float]:
    good = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(good)) if good else None


def _json_safe(value):
    """Make NaN / inf JSON-safe: written as null (inf) with the count kept elsewhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _thumbnail(image: np.ndarray, height: int = PANEL_HEIGHT) -> np.ndarray:
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    width = max(1, int(round(w * height / max(h, 1))))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def sample_indices(expected: int, count: int = 6) -> set:
    """Pair indices to keep for the contact sheet, spread over the expected length."""
    if expected <= 0:
        return {0}
    count = min(count, expected)
    return {int(round(i * (expected - 1) / max(count - 1, 1))) for i in range(count)}


class ReplayReport:
    def __init__(self, input_bag: str, output_bag: str, topics: dict, settings: dict,
                 expected_pairs: int = 0, with_metrics: bool = True, samples: int = 6):
        self.input_bag = str(input_bag)
        self.output_bag = str(output_bag) if output_bag is not None else None  # None: no bag
        self.topics = topics
        self.settings = settings
        self.expected_pairs = expected_pairs
        self.with_metrics = with_metrics
        self.read: Counter = Counter()          # role -> messages read
        self.rejections: Dict[str, Counter] = {r: Counter() for r in ROLES}  # role -> reason -> n
        self.rejection_examples: Dict[str, List[str]] = {r: [] for r in ROLES}
        self.frames: List[dict] = []
        self.failures: List[dict] = []
        self.timings: Dict[str, List[float]] = {}
        self.sample_at = sample_indices(expected_pairs, samples)
        self.samples: List[tuple] = []          # (index, stamp, [4 thumbnails])
        self.closest_gap_s: Optional[float] = None
        self.notes: List[str] = []
        self.result: Optional[dict] = None
        self.missing_examples: List[str] = []

    def metrics_missing(self, index: int, missing: Dict[str, str]) -> None:
        """Metrics that could not be computed on pair ``index`` (they stay None in its frame)."""
        if len(self.missing_examples) < 5:
            by_reason: Dict[str, List[str]] = {}
            for name, reason in missing.items():
                by_reason.setdefault(reason, []).append(name)
            self.missing_examples.append(f'pair {index}: ' + '; '.join(
                f'{", ".join(names)} ({reason})' for reason, names in by_reason.items()))

    # --- collecting ------------------------------------------------------------------------------
    def message(self, role: str) -> None:
        self.read[role] += 1

    def rejected(self, role: str, reason: str, text: str) -> None:
        """Count a message that failed the input checks (reason: cdr, encoding, size, decode)."""
        self.rejections[role][reason] += 1
        if len(self.rejection_examples[role]) < 5:
            self.rejection_examples[role].append(text)

    def stamp_gap(self, gap_s: float) -> None:
        if self.closest_gap_s is None or gap_s < self.closest_gap_s:
            self.closest_gap_s = gap_s

    def timing(self, name: str, ms: float) -> None:
        self.timings.setdefault(name, []).append(float(ms))

    def frame(self, index: int, stamp_ns: int, thermal_stamp_ns: int, timings: dict,
              metrics: Optional[dict], prior_source: str, refined: bool, notes) -> None:
        for name, ms in timings.items():
            self.timing(name, ms)
        self.frames.append({'index': index, 'stamp_ns': int(stamp_ns),
                            'thermal_stamp_ns': int(thermal_stamp_ns),
                            'stamp_offset_ms': (thermal_stamp_ns - stamp_ns) / 1e6,
                            'timings_ms': {k: round(v, 3) for k, v in timings.items()},
                            'metrics': metrics, 'prior_source': prior_source,
                            'refined': bool(refined), 'notes': list(notes)})

    def failure(self, index: int, stamp_ns: int, kind: str, reason: str) -> None:
        self.failures.append({'index': index, 'stamp_ns': int(stamp_ns), 'kind': kind,
                              'reason': reason})

    def wants_sample(self, index: int) -> bool:
        return index in self.sample_at

    def sample(self, index: int, stamp_ns: int, thermal, visible, fused, overlay) -> None:
        self.samples.append((index, stamp_ns, [_thumbnail(x) for x in
                                               (thermal, visible, fused, overlay)]))

    # --- summarising -----------------------------------------------------------------------------
    @staticmethod
    def all_rejected(result: dict) -> Optional[str]:
        """When every frame of a camera was rejected: that, with the reasons (else None)."""
        msgs = result['messages']
        lines = [line for line in (
            all_rejected(label, msgs[key]['read'], msgs[key]['rejected'],
                         (msgs[key].get('rejected_examples') or [None])[0])
            for key, label in (('thermal', 'thermal'), ('rgb', 'RGB'))) if line]
        return '; '.join(lines) or None

    def finish(self, sync_stats: dict, wall_s: float, outputs: Dict[str, int],
               read_error: Optional[str] = None, interrupted: bool = False,
               other_read: Optional[Dict[str, int]] = None, sync_resets: int = 0,
               write_error: Optional[str] = None, digest: Optional[str] = None) -> dict:
        messages = {}
        for role in ROLES:
            counters = dict(sync_stats[role])
            rejected = dict(self.rejections[role])
            label = LABELS[role]
            row = {'topic': (self.topics.get(label) or {}).get('topic'),
                   'read': self.read[role], 'rejected': rejected,
                   'matched': counters['matched']}
            row.update({reason: counters[reason] for reason in DROP_REASONS})
            if counters['pending']:
                raise AccountingError(f"{role}: {counters['pending']} messages still pending "
                                      f'after the end of the stream')
            n_rejected = sum(rejected.values())
            accounted = n_rejected + row['matched'] + sum(row[r] for r in DROP_REASONS)
            if row['read'] != accounted or counters['received'] + n_rejected != row['read']:
                raise AccountingError(f"{role}: read {row['read']} but accounted {accounted} "
                                      f'({row})')
            if self.rejection_examples[role]:
                row['rejected_examples'] = self.rejection_examples[role]
            messages[label] = row
        if messages['thermal']['matched'] != messages[LABELS['visible']]['matched']:
            raise AccountingError('thermal and visible matched counts differ')
        matched = messages['thermal']['matched']
        fused, failed = len(self.frames), len(self.failures)
        if matched != fused + failed:
            raise AccountingError(f'{matched} pairs matched but {fused} fused + {failed} failed')
        for role, count in (other_read or {}).items():
            label = LABELS.get(role, role)
            messages[label] = {'topic': (self.topics.get(label) or {}).get('topic'),
                               'read': count}

        metrics = None
        if self.with_metrics:
            scored = [f for f in self.frames if f['metrics']]
            names = [k for f in scored[:1] for k in f['metrics']]

            def values(n):
                return [f['metrics'][n] for f in scored if f['metrics'].get(n) is not None]

            metrics = {'frames_scored': len(scored),
                       'mean': {n: _finite_mean(values(n)) for n in names},
                       'non_finite': {n: sum(1 for v in values(n) if not math.isfinite(v))
                                      for n in names},
                       'missing': {n: len(scored) - len(values(n)) for n in names
                                   if len(values(n)) < len(scored)},
                       'missing_examples': self.missing_examples}
        latency = {name: percentiles(self.timings.get(name))
                   for name in PIPELINE_STAGES + REPLAY_STAGES if self.timings.get(name)}
        total_ms = self.timings.get('total') or []
        recorded_rate = None
        if len(self.frames) > 1:
            span_s = (self.frames[-1]['stamp_ns'] - self.frames[0]['stamp_ns']) * 1e-9
            recorded_rate = (len(self.frames) - 1) / span_s if span_s > 0 else None
        pairs_per_s = fused / wall_s if wall_s > 0 else None
        self.result = {
            'tool': 'sgdfuse replay',
            'input': {'bag': self.input_bag, 'topics': self.topics},
            'output': {'bag': self.output_bag, 'messages': outputs, 'sha256': digest},
            'settings': self.settings,
            'messages': messages,
            'pairs': {'matched': matched, 'fused': fused, 'failed': failed,
                      'closest_thermal_rgb_gap_s': self.closest_gap_s,
                      'sync_resets': sync_resets},
            'failures': self.failures,
            'failure_reasons': dict(Counter(f['reason'] for f in self.failures).most_common()),
            'metrics': metrics,
            'latency_ms': latency,
            'throughput': {'wall_s': wall_s,
                           'pairs_per_s': pairs_per_s,
                           'pipeline_pairs_per_s': (1000.0 / float(np.mean(total_ms))
                                                    if total_ms else None),
                           'recorded_pairs_per_s': recorded_rate,
                           'realtime_factor': (pairs_per_s / recorded_rate
                                               if pairs_per_s and recorded_rate else None)},
            'read_error': read_error,
            'interrupted': interrupted,
            'write_error': write_error,
            'notes': self.notes,
            'contact_sheet': None,
            'plot': None,
            'prior_sources': dict(Counter(f['prior_source'] for f in self.frames)),
            'frames': self.frames,
        }
        return self.result

    # --- writing ---------------------------------------------------------------------------------
    def contact_sheet(self) -> Optional[np.ndarray]:
        if not self.samples:
            return None
        return sheet_image([[(f'#{index} t={stamp_ns / 1e9:.3f}: {PANELS[0]}', panels[0])]
                            + list(zip(PANELS[1:], panels[1:]))
                            for index, stamp_ns, panels in sorted(self.samples,
                                                                  key=lambda s: s[0])])

    def plot(self) -> Optional[bytes]:
        """Return the run's plot: each headline metric over the frames, time per stage."""
        scored = [f['metrics'] for f in self.frames if f['metrics']]
        stages = [s for s in PIPELINE_STAGES if s != 'total'] + list(REPLAY_STAGES)
        return run_plot({m: [v.get(m) for v in scored] for m in HEADLINE_METRICS
                         if any(m in v for v in scored)},
                        {s: self.timings[s] for s in stages if self.timings.get(s)},
                        f'replay of {Path(self.input_bag).name}: {len(self.frames)} pairs')

    def write(self, folder) -> Path:
        if self.result is None:
            raise RuntimeError('finish() the report before writing it')
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:  # a previous run's
            if (folder / name).is_file():
                (folder / name).unlink()
        # the books first: a disk that fills up keeps the report, if not the picture
        self.result['contact_sheet'] = 'contact_sheet.png' if self.samples else None
        plot = self.plot()
        self.result['plot'] = 'plot.png' if plot is not None else None
        writing.write_bytes(folder / 'report.json',
                            (json.dumps(_json_safe(self.result), indent=1) + '\n').encode())
        markdown = render_markdown(self.result)
        writing.write_bytes(folder / 'report.md', markdown.encode())
        writing.write_bytes(folder / 'report.html',
                            report_html(markdown, 'sgdfuse replay report').encode())
        if plot is not None:
            writing.write_bytes(folder / 'plot.png', plot)
        sheet = self.contact_sheet()
        if sheet is not None:
            ok, buf = cv2.imencode('.png', sheet)
            if ok:
                writing.write_bytes(folder / 'contact_sheet.png', buf.tobytes())
        return folder


def render_markdown(r: dict) -> str:
    lines = ['# sgdfuse replay report', '',
             f"- input bag: `{r['input']['bag']}`",
             f"- output bag: `{r['output']['bag']}`" if r['output']['bag'] else
             '- output bag: none written (the outputs were counted and digested only)']
    topics = r['input']['topics']
    for label in ('thermal', 'rgb', 'rgb_info'):  # the report's keys (LABELS)
        t = topics.get(label)
        if t:
            enc = f", {t['encoding']}" if t.get('encoding') else ''
            lines.append(f"- {label}: `{t['topic']}` ({t['type']}{enc})")
    s = r['settings']
    lines.append('- settings: ' + ', '.join(f'{k}={v}' for k, v in s.items()))
    ran = r.get('prior_sources') or {}
    if ran:  # what ran, which is not always what was configured (a SAM fallback)
        lines.append('- prior that ran: ' + ', '.join(f'{k} on {n} pairs' for k, n in ran.items())
                     + (f" (configured: {s.get('prior.source')})"
                        if set(ran) != {s.get('prior.source')} else ''))
    if r.get('read_error'):
        lines += ['', f"**The input bag stopped being readable:** {r['read_error']}"]
    if r.get('interrupted'):
        signal_name = r['interrupted'] if isinstance(r['interrupted'], str) else 'a signal'
        lines += ['', f'**Interrupted** by {signal_name}: the replay was stopped before the end '
                  'of the bag; the books below cover the messages read until then.']
    if r.get('write_error'):
        lines += ['', f"**Stopped by a failed write:** {r['write_error']}; the output bag holds "
                  'the pairs written before it.']
    p = r['pairs']
    lines += ['', '## Messages', '',
              '| topic | read | matched | unmatched | late | duplicate | overflow | rejected |',
              '|---|---|---|---|---|---|---|---|']
    labels = [LABELS[role] for role in ROLES]
    for label in labels:
        m = r['messages'][label]
        rejected = ', '.join(f'{n} {k}' for k, n in m['rejected'].items()) or '0'
        lines.append(f"| {label} `{m['topic']}` | {m['read']} | {m['matched']} | {m['unmatched']} "
                     f"| {m['late']} | {m['duplicate']} | {m['overflow']} | {rejected} |")
    lines += ['', f"Pairs matched: **{p['matched']}**; fused: **{p['fused']}**; failed: "
              f"**{p['failed']}**. Closest thermal/RGB stamps seen: "
              f"{cell_text(p['closest_thermal_rgb_gap_s'], 4)} s "
              f"(sync.slop = {s.get('sync.slop')} s)."]
    for label in labels:
        for example in r['messages'][label].get('rejected_examples', []):
            lines.append(f'- rejected {label} message: {example}')
    if p.get('sync_resets'):
        lines.append(f"- the synchroniser was reset {p['sync_resets']} times (stamps jumped back)")
    if p['matched'] == 0:
        lines += ['', '**No pairs were matched**: no thermal and RGB messages had stamps within '
                  'sync.slop of each other.']
    if r['failures']:
        lines += ['', '## Failed frames', '', '| reason | frames |', '|---|---|']
        lines += [f'| {reason} | {n} |' for reason, n in r['failure_reasons'].items()]
    met = r.get('metrics')
    if met and met['frames_scored']:
        names = [n for n in HEADLINE_METRICS if n in met['mean']]
        lines += ['', f"## Fusion metrics (mean over {met['frames_scored']} frames)", '',
                  '| ' + ' | '.join(names) + ' |', '|' + '---|' * len(names),
                  '| ' + ' | '.join(cell_text(met['mean'][n], 3) for n in names) + ' |']
    if r['latency_ms']:
        lines += ['', '## Latency (ms)', '',
                  '| stage | p50 | p90 | p99 | mean |', '|---|---|---|---|---|']
        for stage, v in r['latency_ms'].items():
            lines.append(f"| {stage} | {cell_text(v['p50'], 1)} | {cell_text(v['p90'], 1)} | "
                         f"{cell_text(v['p99'], 1)} | {cell_text(v['mean'], 1)} |")
    t = r['throughput']
    lines += ['', '## Throughput', '',
              f'- end to end (read, decode, fuse, score, write): '
              f"{cell_text(t['pairs_per_s'], 2)} pairs/s over {cell_text(t['wall_s'], 1)} s",
              f'- pipeline only (1000 / mean total latency): '
              f"{cell_text(t['pipeline_pairs_per_s'], 2)} pairs/s",
              f"- recorded pair rate: {cell_text(t['recorded_pairs_per_s'], 2)} pairs/s; "
              f"real-time factor (end to end / recorded): {cell_text(t['realtime_factor'], 2)}"]
    if r.get('plot'):
        lines += ['', '## Plot (metric distributions over the frames, time per stage)', '',
                  '![metric distributions and time per stage](plot.png)']
    frames = r.get('frames') or []
    if frames:
        names = [n for n in HEADLINE_METRICS if met and n in met['mean']] if met else []
        lines += ['', '## Per frame (metrics, pipeline time)', '']
        lines += per_image_table([(f"#{f['index']} t={f['stamp_ns'] / 1e9:.3f}", f['metrics'],
                                   f['timings_ms'].get('total')) for f in frames],
                                 names, 'frame (RGB stamp, s)')
    out = r['output']['messages']
    lines += ['', '## Output topics', '', '| topic | messages |', '|---|---|']
    lines += [f'| `{name}` | {n} |' for name, n in out.items()]
    if r.get('notes'):
        lines += ['', '## Notes', ''] + [f'- {n}' for n in r['notes']]
    if r.get('contact_sheet'):
        lines += ['', '## Contact sheet', '', '![contact sheet](contact_sheet.png)']
    return '\n'.join(lines) + '\n'
