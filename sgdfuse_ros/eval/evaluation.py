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
The fusion pipeline run over pairs of image files and scored, as published tables do.

:func:`run_evaluation` (``sgdfuse evaluate`` and the quality benchmarks) writes, under its
output folder: ``fused/NAME.png`` (colour), ``metrics.json`` (per image, mean, the config, timing
percentiles), ``metrics.csv``, ``report.md`` and ``report.html`` (the table, the timings, a
per-image table, the plot, the contact sheet), ``plot.png`` and ``contact_sheet.png``
(thermal | visible | fused | prior, a few rows).

Metrics are computed on the written PNGs read back the way the reference evaluator reads them, so
the numbers are those a reader of the folder would get with any published evaluator.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
import time
from typing import Dict, List, Optional

import cv2
import numpy as np

from .datasets import load_pair, Pair
from .metrics import frame_metrics, HEADLINE_METRICS, METRIC_NAMES, to_gray
from .report_pages import contact_sheet as sheet_image, per_image_table, report_html
from .report_pages import run_plot
from .scoring import format_table, percentile_summary
from .. import writing
from ..errors import error_line, InputError, SgdfuseError
from ..pipeline.fusion_pipeline import FusionPipeline
from ..prior.format import overlay
from ..writing import is_write_failure, write_failure

EVAL_OVERRIDES = {'output.width': 0, 'output.height': 0, 'prior.every_frame': True}


def percentiles(values: List[float]) -> Dict[str, float]:
    return percentile_summary(values, ('median', 'p90', 'mean', 'n'))


def contact_sheet(rows, path: Path) -> None:
    """
    Write one PNG a person looks at: rows of equal width, each panel labelled.

    rows: (name, thermal u8, visible u8, fused bgr, overlay bgr).
    """
    sheet = sheet_image([[(f'{name}: thermal', thermal), ('visible', visible),
                          ('fused', fused), ('prior overlay', over)]
                         for name, thermal, visible, fused, over in rows])
    writing.write_bytes(path, _png(sheet))


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', image)
    if not ok:
        raise InputError('PNG encoding failed')
    return buf.tobytes()


def run_evaluation(pairs: List[Pair], out: Path, config: dict, label: str = 'sgdfuse',
                   contact_rows: int = 6, with_metrics: bool = True,
                   progress: Optional[callable] = None, stop=None, pipeline=None,
                   shown_as: Optional[Path] = None) -> dict:
    """
    Fuse and score ``pairs`` one at a time (memory does not grow with their number).

    Each file is read once (:func:`load_pair`): the bytes that are fused are the bytes that are
    scored. A pair that cannot be read, fused or written is counted as failed with a one-line
    reason and the run goes on; a metric that cannot be computed on a frame is missing for that
    frame. A failed write of the results (a full disk) stops the run and is recorded in
    ``write_error``; a signal (``stop.requested``) stops it at the next pair. The report always
    balances: ``pairs = fused + failed + not_reached``. ``pipeline``: one already built (else
    built here from ``config``; the caller closes its own). ``shown_as``: the folder named in
    messages instead of ``out`` (a scratch folder that will be renamed to it).
    """
    fused_dir = out / 'fused'
    fused_dir.mkdir(parents=True, exist_ok=True)
    total = len(pairs)
    sample_at = set(np.linspace(0, total - 1, min(contact_rows, total)).round()
                    .astype(int).tolist()) if contact_rows > 0 and total else set()
    registered = (bool(config['registration.homography'])
                  or config['registration.resize_mismatched'])
    max_pixels = config['limits.max_input_pixels']
    stage_ms: Dict[str, List[float]] = {}
    sheet_rows, prior_sources = [], {}
    per_image: Dict[str, dict] = {}
    time_ms: Dict[str, float] = {}  # each pair's pipeline time (its 'total' stage)
    missing: Dict[str, dict] = {}
    failed: Dict[str, str] = {}
    write_error, interrupted = None, None
    started = time.perf_counter()
    with (contextlib.nullcontext(pipeline) if pipeline is not None
          else FusionPipeline(config)) as pipeline:
        device = pipeline.device
        for index, pair in enumerate(pairs):
            if stop is not None and stop.requested:
                interrupted = stop.name
                break
            try:
                thermal, visible, ir_colour, vis_colour = load_pair(pair, max_pixels)
                if not registered and thermal.shape[:2] != visible.shape[:2]:
                    raise InputError(
                        f'thermal {thermal.shape[1]}x{thermal.shape[0]} and visible '
                        f'{visible.shape[1]}x{visible.shape[0]} differ in size and no '
                        'registration is configured (set registration.homography or '
                        'registration.resize_mismatched)')
                if stop is None:
                    result = pipeline.process(thermal, visible)
                else:  # a second signal abandons this pair: it is then not reached
                    result, abandoned = stop.abandonable(pipeline.process, thermal, visible)
                    if abandoned:
                        break
            except SgdfuseError as err:
                failed[pair.name] = str(err).splitlines()[0] if str(err) else type(err).__name__
                _progress(progress, index, total)
                continue
            except Exception as err:  # noqa: B902 - a stage's bug costs this pair only
                failed[pair.name] = error_line(err, 160)
                _progress(progress, index, total)
                continue
            ir_gray, vis_gray = to_gray(ir_colour), to_gray(vis_colour)
            path = fused_dir / f'{pair.name}.png'
            try:
                writing.write_bytes(path, _png(result.fused_bgr))
                if ir_gray.shape != result.fused_y.shape or vis_gray.shape != result.fused_y.shape:
                    # registered or resized: score against the sources as the pipeline saw them
                    reg = out / 'registered_sources'
                    reg.mkdir(exist_ok=True)
                    thermal_u8 = np.clip(result.thermal * 255 + 0.5, 0, 255).astype(np.uint8)
                    writing.write_bytes(reg / f'{pair.name}_ir.png', _png(thermal_u8))
                    writing.write_bytes(reg / f'{pair.name}_vis.png', _png(result.visible))
                    ir_gray, vis_gray = to_gray(thermal_u8), to_gray(result.visible)
            except Exception as err:  # noqa: B902
                if not is_write_failure(err):
                    raise
                write_error = write_failure(err, shown_as / path.relative_to(out)
                                            if shown_as else path)
                break
            for stage, ms in result.timings.items():
                stage_ms.setdefault(stage, []).append(ms)
            if 'total' in result.timings:
                time_ms[pair.name] = round(float(result.timings['total']), 3)
            prior_sources[result.prior.source] = prior_sources.get(result.prior.source, 0) + 1
            if with_metrics:
                # the fused PNG is lossless: to_gray(fused_bgr) is what reading it back gives
                values, lacking = frame_metrics(to_gray(result.fused_bgr), ir_gray, vis_gray)
                per_image[pair.name] = values
                if lacking:
                    missing[pair.name] = lacking
            else:
                per_image[pair.name] = {}
            if index in sample_at:
                thermal_u8 = np.clip(result.thermal * 255 + 0.5, 0, 255).astype(np.uint8)
                sheet_rows.append((pair.name, thermal_u8, result.visible, result.fused_bgr,
                                   overlay(result.fused_bgr, result.prior)))
            _progress(progress, index, total)
    if stop is not None and stop.requested:  # also when it came during the last pair
        interrupted = stop.name
    wall = time.perf_counter() - started

    fused = len(per_image)
    report = {'label': label, 'pairs': total, 'fused': fused, 'failed': len(failed),
              'not_reached': total - fused - len(failed),
              'failures': failed, 'interrupted': interrupted, 'write_error': write_error,
              'device': device, 'prior_sources': prior_sources, 'wall_s': wall,
              'timings_ms': {k: percentiles(v) for k, v in stage_ms.items()},
              'time_ms': time_ms,
              'config': dict(config.items())}
    assert report['fused'] + report['failed'] + report['not_reached'] == total
    if with_metrics and per_image:
        names = list(METRIC_NAMES)
        report['per_image'] = per_image
        report['metrics_missing'] = missing
        report['mean'] = {}
        report['scored'] = {}
        for m in names:
            vals = [v[m] for v in per_image.values() if v.get(m) is not None]
            report['mean'][m] = float(np.mean(vals)) if vals else None
            report['scored'][m] = len(vals)
    report['write_error'] = _write_results(report, out, sheet_rows, write_error, shown_as,
                                           stage_ms)
    return report


def _progress(progress, index: int, total: int) -> None:
    if progress:
        progress(index + 1, total)


def _write_results(report: dict, out: Path, sheet_rows: list, write_error,
                   shown_as: Optional[Path] = None,
                   stage_ms: Optional[Dict[str, List[float]]] = None) -> Optional[str]:
    """
    Write metrics.json, metrics.csv, report.md and .html, plot, contact sheet.

    Return the first failed write, if any.
    """

    def fmt(value):
        return '' if value is None else f'{value:.6f}'

    files = []
    if 'per_image' in report:
        text = io.StringIO()
        writer = csv.writer(text)
        names = list(report['mean'])
        writer.writerow(['name'] + names)
        for name, values in report['per_image'].items():
            writer.writerow([name] + [fmt(values[m]) for m in names])
        writer.writerow(['mean'] + [fmt(report['mean'][m]) for m in names])
        files.append(('metrics.csv', text.getvalue().encode()))
    files.append(('metrics.json', json.dumps(report, indent=1).encode()))
    if sheet_rows:
        files.append(('contact_sheet.png', None))
    per_image = report.get('per_image') or {}
    plot = run_plot({m: [v.get(m) for v in per_image.values()] for m in HEADLINE_METRICS},
                    {k: v for k, v in (stage_ms or {}).items() if k != 'total'},
                    f"{report['label']}: {report['fused']} pairs")
    if plot is not None:
        files.append(('plot.png', plot))
    markdown = render_report(report, bool(sheet_rows), plot is not None)
    files.append(('report.md', markdown.encode()))
    files.append(('report.html', report_html(markdown, f"evaluation: {report['label']}")
                  .encode()))
    for name, data in files:
        try:
            if name == 'contact_sheet.png':
                contact_sheet(sheet_rows, out / name)
            else:
                writing.write_bytes(out / name, data)
        except Exception as err:  # noqa: B902
            if not is_write_failure(err):
                raise
            return write_error or write_failure(err, (shown_as or out) / name)
    return write_error


def render_report(report: dict, with_sheet: bool, with_plot: bool = False) -> str:
    lines = [f"# Fusion evaluation: {report['label']}", '',
             f"{report['pairs']} pairs: {report['fused']} fused, {report['failed']} failed, "
             f"{report['not_reached']} not reached; device {report['device']}, prior sources "
             f"{report['prior_sources']}, wall time {report['wall_s']:.1f} s.", '']
    if report.get('interrupted'):
        lines += [f"**Interrupted** by {report['interrupted']}: the pairs not reached were not "
                  'fused; everything below is about the pairs that were.', '']
    if report.get('write_error'):
        lines += [f"**Stopped by a failed write:** {report['write_error']}", '']
    if report.get('mean'):
        lines += ['## Metrics (mean over the pairs; reference-evaluator conventions)', '',
                  format_table({report['label']: report['mean']}), '']
        short = {m: n for m, n in report['scored'].items() if n < report['fused']}
        if short:
            why = {}
            for lacking in report.get('metrics_missing', {}).values():
                for m, reason in lacking.items():
                    why.setdefault(m, reason)
            lines += ['Metrics missing on some frames (mean over the frames that have them): '
                      + ', '.join(f'{m} on {report["fused"] - n}' for m, n in short.items()),
                      ''] + [f'- {m}: {reason}' for m, reason in why.items()] + ['']
    if report.get('failures'):
        lines += ['## Failed pairs', '', '| pair | reason |', '|---|---|']
        lines += [f'| {name} | {reason} |' for name, reason in report['failures'].items()]
        lines.append('')
    lines += ['## Per-stage time (ms)', '', '| stage | median | p90 | mean |', '|---|---|---|---|']
    for stage, t in report['timings_ms'].items():
        lines.append(f"| {stage} | {t['median']:.2f} | {t['p90']:.2f} | {t['mean']:.2f} |")
    if with_plot:
        lines += ['', '## Plot (metric distributions over the pairs, time per stage)', '',
                  '![metric distributions and time per stage](plot.png)']
    times = report.get('time_ms') or {}
    names = list(report.get('per_image') or times)
    if names:
        scored = report.get('per_image') or {}
        lines += ['', '## Per image (metrics, pipeline time)', '']
        lines += per_image_table([(n, scored.get(n), times.get(n)) for n in names],
                                 list(HEADLINE_METRICS) if scored else [], 'pair')
    if with_sheet:
        lines += ['', '## Contact sheet (thermal | visible | fused | prior)', '',
                  '![contact sheet](contact_sheet.png)']
    return '\n'.join(lines) + '\n'
