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
``sgdfuse evaluate``: fuse a folder of registered pairs and score them as published tables do.

Writes, under ``--out``: ``fused/NAME.png`` (colour), ``metrics.json`` (per image, mean, the
config, timing percentiles), ``metrics.csv``, ``report.md`` (the table, the timings, the contact
sheet) and ``contact_sheet.png`` (thermal | visible | fused | prior, a few rows).

Metrics are computed on the written PNGs read back the way the reference evaluator reads them, so
the numbers are those a reader of the folder would get with any published evaluator.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
import time
from typing import Dict, List, Optional

import cv2
import numpy as np

from ..config import load_config, parse_override
from ..errors import InputError
from ..eval.datasets import (dataset_pairs, default_data_dir, list_pairs, Pair, read_pair,
                             read_split)

EVAL_OVERRIDES = {'output.width': 0, 'output.height': 0, 'prior.every_frame': True}


def add_arguments(parser) -> None:
    src = parser.add_argument_group('input pairs')
    src.add_argument('--data', type=Path, default=None,
                     help='RoadScene-layout folder (ir/, vis/, split.json); default $SGDFUSE_DATA')
    src.add_argument('--ir', type=Path, help='folder of thermal images (instead of --data)')
    src.add_argument('--vis', type=Path, help='folder of visible images (instead of --data)')
    src.add_argument('--subset', default=None, help='only this list of split.json (e.g. test)')
    src.add_argument('--split', type=Path, default=None,
                     help='split file (default DATA/split.json)')
    src.add_argument('--limit', type=int, default=0, help='only the first N pairs (0 = all)')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--config', type=Path, default=None,
                        help="config file (default: the package's config/fusion.yaml)")
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='NAME=VALUE', help='override a parameter (repeatable)')
    parser.add_argument('--label', default=None, help='name of this run in the report table')
    parser.add_argument('--contact-rows', type=int, default=6, help='rows of the contact sheet')
    parser.add_argument('--no-metrics', action='store_true', help='only fuse')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


def resolve_pairs(args) -> List[Pair]:
    if args.ir or args.vis:
        if not (args.ir and args.vis):
            raise InputError('--ir and --vis go together')
        names = read_split(args.split, args.subset) if (args.split and args.subset) else None
        return list_pairs(args.ir, args.vis, names)
    data = args.data or default_data_dir()
    if data is None:
        raise InputError('no input: give --data DIR (or --ir/--vis), or set SGDFUSE_DATA')
    if args.split:
        names = read_split(args.split, args.subset or 'test')
        return list_pairs(Path(data) / 'ir', Path(data) / 'vis', names)
    return dataset_pairs(data, args.subset)


def _check_pairs(pairs: List[Pair], config: dict) -> List[tuple]:
    """Read every pair before fusing, so a bad file stops the run before any work is spent."""
    loaded = []
    registered = (bool(config['registration.homography'])
                  or config['registration.resize_mismatched'])
    for pair in pairs:
        thermal, visible = read_pair(pair)
        if not registered and thermal.shape[:2] != visible.shape[:2]:
            raise InputError(
                f'pair {pair.name}: thermal {thermal.shape[1]}x{thermal.shape[0]} and visible '
                f'{visible.shape[1]}x{visible.shape[0]} differ in size and no registration is '
                'configured (set registration.homography or registration.resize_mismatched)')
        loaded.append((thermal, visible))
    return loaded


def percentiles(values: List[float]) -> Dict[str, float]:
    from ..node.meters import percentile_summary
    return percentile_summary(values, ('median', 'p90', 'mean', 'n'))


def _tile(image: np.ndarray, height: int, label: str) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    width = max(1, int(round(image.shape[1] * height / image.shape[0])))
    tile = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def contact_sheet(rows: List[tuple], path: Path, height: int = 220) -> None:
    """
    Write one PNG a person looks at.

    rows: (name, thermal u8, visible u8, fused bgr, overlay bgr).
    """
    lines = []
    for name, thermal, visible, fused, over in rows:
        tiles = [_tile(thermal, height, f'{name} thermal'), _tile(visible, height, 'visible'),
                 _tile(fused, height, 'fused'), _tile(over, height, 'prior')]
        lines.append(np.hstack(tiles))
    width = max(line.shape[1] for line in lines)
    lines = [cv2.copyMakeBorder(line, 0, 4, 0, width - line.shape[1], cv2.BORDER_CONSTANT,
                                value=(255, 255, 255)) for line in lines]
    cv2.imwrite(str(path), np.vstack(lines))


def run_evaluation(pairs: List[Pair], out: Path, config: dict, label: str = 'sgdfuse',
                   contact_rows: int = 6, with_metrics: bool = True,
                   progress: Optional[callable] = None) -> dict:
    from ..pipeline.fusion_pipeline import FusionPipeline
    from ..prior.format import overlay

    out.mkdir(parents=True, exist_ok=True)
    fused_dir = out / 'fused'
    fused_dir.mkdir(exist_ok=True)
    loaded = _check_pairs(pairs, config)
    sample_at = set(np.linspace(0, len(pairs) - 1, min(contact_rows, len(pairs))).round()
                    .astype(int).tolist()) if contact_rows > 0 else set()
    stage_ms: Dict[str, List[float]] = {}
    sheet_rows, prior_sources = [], {}
    sources = {}  # name -> (ir path, vis path) the metrics compare against
    started = time.perf_counter()
    with FusionPipeline(config) as pipeline:
        for index, (pair, (thermal, visible)) in enumerate(zip(pairs, loaded)):
            result = pipeline.process(thermal, visible)
            path = fused_dir / f'{pair.name}.png'
            if not cv2.imwrite(str(path), result.fused_bgr):
                raise InputError(f'cannot write {path}')
            sources[pair.name] = (pair.thermal, pair.visible)
            if (thermal.shape[:2] != result.fused_y.shape
                    or visible.shape[:2] != result.fused_y.shape):
                # registered or resized: score against the sources as the pipeline saw them
                reg = out / 'registered_sources'
                reg.mkdir(exist_ok=True)
                ir_path, vis_path = reg / f'{pair.name}_ir.png', reg / f'{pair.name}_vis.png'
                cv2.imwrite(str(ir_path), np.clip(result.thermal * 255 + 0.5, 0, 255)
                            .astype(np.uint8))
                cv2.imwrite(str(vis_path), result.visible)
                sources[pair.name] = (ir_path, vis_path)
            for stage, ms in result.timings.items():
                stage_ms.setdefault(stage, []).append(ms)
            prior_sources[result.prior.source] = prior_sources.get(result.prior.source, 0) + 1
            if index in sample_at:
                thermal_u8 = np.clip(result.thermal * 255 + 0.5, 0, 255).astype(np.uint8)
                sheet_rows.append((pair.name, thermal_u8, result.visible, result.fused_bgr,
                                   overlay(result.fused_bgr, result.prior)))
            if progress:
                progress(index + 1, len(pairs))
        device = pipeline.device
    wall = time.perf_counter() - started

    report = {'label': label, 'pairs': len(pairs), 'device': device,
              'prior_sources': prior_sources, 'wall_s': wall,
              'timings_ms': {k: percentiles(v) for k, v in stage_ms.items()},
              'config': dict(config.items())}
    if with_metrics:
        from ..eval.metrics import fusion_metrics, read_gray
        per_image = {}
        for pair in pairs:
            per_image[pair.name] = fusion_metrics(read_gray(fused_dir / f'{pair.name}.png'),
                                                  read_gray(sources[pair.name][0]),
                                                  read_gray(sources[pair.name][1]))
        names = list(next(iter(per_image.values())))
        report['per_image'] = per_image
        report['mean'] = {m: float(np.mean([v[m] for v in per_image.values()])) for m in names}
        with open(out / 'metrics.csv', 'w', newline='') as handle:
            writer = csv.writer(handle)
            writer.writerow(['name'] + names)
            for name, values in per_image.items():
                writer.writerow([name] + [f'{values[m]:.6f}' for m in names])
            writer.writerow(['mean'] + [f"{report['mean'][m]:.6f}" for m in names])
    (out / 'metrics.json').write_text(json.dumps(report, indent=1))
    if sheet_rows:
        contact_sheet(sheet_rows, out / 'contact_sheet.png')
    (out / 'report.md').write_text(render_report(report, bool(sheet_rows)))
    return report


def render_report(report: dict, with_sheet: bool) -> str:
    lines = [f"# Fusion evaluation: {report['label']}", '',
             f"{report['pairs']} pairs, device {report['device']}, prior sources "
             f"{report['prior_sources']}, wall time {report['wall_s']:.1f} s.", '']
    if 'mean' in report:
        from ..eval.scoring import format_table
        lines += ['## Metrics (mean over the pairs; reference-evaluator conventions)', '',
                  format_table({report['label']: report['mean']}), '']
    lines += ['## Per-stage time (ms)', '', '| stage | median | p90 | mean |', '|---|---|---|---|']
    for stage, t in report['timings_ms'].items():
        lines.append(f"| {stage} | {t['median']:.2f} | {t['p90']:.2f} | {t['mean']:.2f} |")
    if with_sheet:
        lines += ['', '## Contact sheet (thermal | visible | fused | prior)', '',
                  '![contact sheet](contact_sheet.png)']
    return '\n'.join(lines) + '\n'


def main(args) -> int:
    pairs = resolve_pairs(args)
    if args.limit > 0:
        pairs = pairs[: args.limit]
    overrides = dict(EVAL_OVERRIDES)
    overrides.update(dict(parse_override(text) for text in args.overrides))
    config = load_config(args.config, overrides)
    label = args.label or f"sgdfuse ({config['first_stage.type']}, K={config['refiner.steps']})"
    from .progress import Progress
    with Progress(len(pairs), 'fusing', unit='pair', quiet=args.quiet) as bar:
        report = run_evaluation(pairs, args.out, config, label, args.contact_rows,
                                not args.no_metrics, lambda done, total: bar.update())
    if 'mean' in report:
        from ..eval.scoring import format_table
        print(format_table({label: report['mean']}))
    print(f"fused images: {args.out / 'fused'}")
    print(f"report:       {args.out / 'report.md'}")
    return 0
