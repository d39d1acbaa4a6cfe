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
The corpus report: ``corpus.json``, ``corpus.csv``, ``report.md`` and its plots.

``corpus.json`` holds everything (one entry per bag, the totals, the worst bags, the groups, the
comparison with a baseline); ``corpus.csv`` one row per bag for spreadsheets; ``report.md`` is
for people, with ``plots/metrics.png`` (each headline metric over the bags) and
``plots/throughput.png`` (pairs/s per bag against its length). Each file is written whole or
not at all (:func:`sgdfuse_ros.writing.write_bytes`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import List

from .. import writing
from ..eval.metrics import HEADLINE_METRICS
from ..eval.report_pages import pyplot

REPORT_FILES = ('corpus.json', 'corpus.csv', 'report.md', 'plots/metrics.png',
                'plots/throughput.png', 'plots/baseline.png')


def _safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def _signed(value, digits: int = 3) -> str:
    return '-' if value is None else f'{value:+.{digits}f}'


def csv_text(report: dict) -> str:
    """One row per bag: status, counts, throughput, headline metrics, tags, baseline deltas."""
    rows = report['bags']
    tags = sorted({k for r in rows for k in r['tags']})
    per_bag = (report.get('comparison') or {}).get('per_bag', {})
    header = (['id', 'bag', 'status', 'reason', 'pairs', 'fused', 'failed', 'pairs_per_s',
               'wall_s'] + list(HEADLINE_METRICS) + [f'tag:{t}' for t in tags]
              + ['output_sha256', 'resumed'])
    if per_bag:
        header += ['baseline_verdict'] + [f'delta:{n}' for n in HEADLINE_METRICS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(header)
    for r in rows:
        line = [r['id'], r['bag'], r['status'], r['reason'] or '', r['pairs'], r['fused'],
                r['failed'], r['pairs_per_s'], r['wall_s']]
        line += [r['metrics'].get(n) for n in HEADLINE_METRICS]
        line += [r['tags'].get(t, '') for t in tags]
        line += [r['output_sha256'] or '', bool(r.get('resumed'))]
        if per_bag:
            d = per_bag.get(r['id'], {})
            line += [d.get('verdict', '')] + [(d.get('metrics') or {}).get(n)
                                              for n in HEADLINE_METRICS]
        writer.writerow(['' if v is None else v for v in line])
    return out.getvalue()


def render_markdown(report: dict, plots: List[str]) -> str:
    rows, totals = report['bags'], report['totals']
    status = totals['status']
    lines = ['# sgdfuse corpus report', '',
             f"- {totals['bags']} bags: " + ', '.join(f'{n} {s}' for s, n in status.items())
             + (f" ({totals['resumed']} done by an earlier run, skipped)"
                if totals['resumed'] else ''),
             f"- pairs: {totals['pairs']} matched, {totals['fused']} fused, "
             f"{totals['failed_pairs']} failed",
             f"- wall time {_fmt(totals['wall_s'], 1)} s; {_fmt(totals['bags_per_hour'], 0)} "
             f"bags/hour, {_fmt(totals['pairs_per_s'], 2)} pairs/s over the bags run now",
             f"- run: {report['run']['how']}; key `{report['key']}` (config, weights and replay "
             f'options: a rerun with the same key skips the bags done)']
    if report.get('interrupted'):
        lines += ['', f"**Interrupted** by {report['interrupted']}: the bags not finished are "
                  '`interrupted` or `not_run`; a rerun does them.']
    comparison = report.get('comparison')
    if comparison:
        lines += ['', '## Against the baseline', '', f"**{comparison['verdict']}.**", '',
                  '| metric | mean change per bag |', '|---|---|']
        lines += [f'| {n} | {_signed(v)} |' for n, v in comparison['mean_delta'].items()]
    lines += ['', '## Mean over the bags', '',
              '| ' + ' | '.join(HEADLINE_METRICS) + ' |', '|' + '---|' * len(HEADLINE_METRICS),
              '| ' + ' | '.join(_fmt(totals['metrics'].get(n)) for n in HEADLINE_METRICS)
              + ' |']
    if report['worst']:
        lines += ['', '## Worst bags by each headline metric', '',
                  '| metric | worst bags (value) |', '|---|---|']
        for name, worst in report['worst'].items():
            named = [f"`{Path(w['bag']).name}` ({_fmt(w['value'])})" for w in worst]
            lines.append(f"| {name} | {', '.join(named)} |")
    for column, values in report['groups'].items():
        lines += ['', f'## By {column}', '',
                  f'| {column} | bags | ok | fused | pairs/s | '
                  + ' | '.join(HEADLINE_METRICS) + ' |',
                  '|---|---|---|---|---|' + '---|' * len(HEADLINE_METRICS)]
        for value, g in values.items():
            lines.append(f"| {value or '(none)'} | {g['bags']} | {g['ok']} | {g['fused']} | "
                         f"{_fmt(g['pairs_per_s'], 2)} | "
                         + ' | '.join(_fmt(g['metrics'].get(n)) for n in HEADLINE_METRICS)
                         + ' |')
    per_bag = (comparison or {}).get('per_bag', {})
    shown = ('Qabf', 'VIF', 'SSIM', 'MI', 'EN')
    lines += ['', '## Bags', '',
              '| bag | status | pairs | fused | failed | pairs/s | ' + ' | '.join(shown)
              + (' | vs baseline' if per_bag else '') + ' |',
              '|---|---|---|---|---|---|' + '---|' * len(shown) + ('---|' if per_bag else '')]
    for r in rows:
        cells = [f"`{Path(r['bag']).name}`", r['status'] + (' (resumed)' if r.get('resumed')
                                                            else ''),
                 _fmt(r['pairs']), _fmt(r['fused']), _fmt(r['failed']),
                 _fmt(r['pairs_per_s'], 2)] + [_fmt(r['metrics'].get(n)) for n in shown]
        if per_bag:
            d = per_bag.get(r['id'], {})
            deltas = d.get('metrics') or {}
            cells.append(d.get('verdict', '-') + (
                f" (Qabf {_signed(deltas.get('Qabf'))})" if deltas.get('Qabf') is not None
                else ''))
        lines.append('| ' + ' | '.join(cells) + ' |')
    failed = [r for r in rows if r['status'] != 'ok' and r['reason']]
    if failed:
        lines += ['', '## Bags not fused whole', '']
        lines += [f"- `{r['bag']}` ({r['status']}): {r['reason']}" for r in failed]
    lines += ['', 'Alignment and target scores: not measured by the replay (see '
              '`sgdfuse register` and the live alignment status); per-bag replay reports: '
              '`bags/ID/report/report.md`.']
    for plot in plots:
        lines += ['', f'![{Path(plot).stem}]({plot})']
    return '\n'.join(lines) + '\n'


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100)
    return buffer.getvalue()


def plot_pngs(report: dict) -> dict:
    """{relative name: PNG bytes} of the plots; {} when no bag was fused."""
    plt = pyplot()
    ok = [r for r in report['bags'] if r['status'] == 'ok']
    if not ok:
        return {}
    out = {}
    tag_column = next(iter(report['groups']), None)
    tag_values = sorted({r['tags'].get(tag_column, '') for r in ok}) if tag_column else ['']
    colours = {v: f'C{i % 10}' for i, v in enumerate(tag_values)}

    def colour(r):
        return colours[r['tags'].get(tag_column, '')] if tag_column else 'C0'

    names = [n for n in HEADLINE_METRICS if any(r['metrics'].get(n) is not None for r in ok)]
    cols = 3
    fig, axes = plt.subplots(math.ceil(len(names) / cols), cols,
                             figsize=(10, 3.0 * math.ceil(len(names) / cols)), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = [(r['metrics'][name], colour(r)) for r in ok
                  if r['metrics'].get(name) is not None]
        ax.boxplot([v for v, _ in values], widths=0.5, showfliers=False)
        for i, (v, c) in enumerate(values):
            ax.plot(1 + 0.3 * ((i % 7) / 6.0 - 0.5), v, 'o', ms=3.5, color=c, alpha=0.8)
        ax.set_title(f'{name} (mean per bag)', fontsize=9)
        ax.set_xticks([])
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    if tag_column:
        handles = [plt.Line2D([], [], marker='o', ls='', color=colours[v], label=v or '(none)')
                   for v in tag_values]
        fig.legend(handles=handles, title=tag_column, loc='upper right', fontsize=8,
                   ncol=min(len(handles), 4))
    fig.suptitle(f'Headline metrics over {len(ok)} bags (one dot per bag)', fontsize=11,
                 x=0.02, ha='left')
    fig.tight_layout(rect=(0, 0, 1, 0.95 if len(names) > 3 else 0.88))
    out['plots/metrics.png'] = _figure_png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in ok:
        if r['pairs_per_s'] is not None:
            ax.plot(r['pairs'], r['pairs_per_s'], 'o', color=colour(r), alpha=0.8)
    ax.set_xlabel('pairs in the bag')
    ax.set_ylabel('pairs/s (end to end, one bag)')
    ax.set_title(f"Throughput per bag ({report['run']['how']})", fontsize=10)
    ax.grid(alpha=0.3)
    if tag_column:
        ax.legend(handles=handles, title=tag_column, fontsize=8)
    fig.tight_layout()
    out['plots/throughput.png'] = _figure_png(fig)
    plt.close(fig)

    per_bag = (report.get('comparison') or {}).get('per_bag', {})
    compared = [(r, per_bag[r['id']]) for r in ok if per_bag.get(r['id'], {}).get('metrics')]
    if compared:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        data = [[d['metrics'][n] for _, d in compared if d['metrics'].get(n) is not None]
                for n in names]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names)
        ax.axhline(0.0, color='k', lw=0.8)
        ax.set_ylabel('change per bag (this run - baseline)')
        ax.set_title(report['comparison']['verdict'], fontsize=9)
        ax.tick_params(labelsize=8)
        fig.tight_layout()
        out['plots/baseline.png'] = _figure_png(fig)
        plt.close(fig)
    return out


def write_report(folder, report: dict) -> List[str]:
    """Write the corpus report into ``folder``; return the files written (relative names)."""
    folder = Path(folder)
    (folder / 'plots').mkdir(parents=True, exist_ok=True)
    written = []
    # the books first: a disk that fills up keeps them, if not the pictures
    writing.write_bytes(folder / 'corpus.json',
                        (json.dumps(_safe(report), indent=1) + '\n').encode())
    writing.write_bytes(folder / 'corpus.csv', csv_text(report).encode())
    written += ['corpus.json', 'corpus.csv']
    plots = plot_pngs(report)
    for name, data in plots.items():
        writing.write_bytes(folder / name, data)
    for name in REPORT_FILES:  # a previous run's plot that this run has not made
        if name.startswith('plots/') and name not in plots and (folder / name).is_file():
            (folder / name).unlink()
    writing.write_bytes(folder / 'report.md', render_markdown(report, list(plots)).encode())
    written += ['report.md'] + list(plots)
    return written
