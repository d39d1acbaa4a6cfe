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

The work is :func:`sgdfuse_ros.eval.evaluation.run_evaluation`; this module adds the command
line, the output folder (a previous run is replaced once the new one is complete) and the
messages. Writes, under ``--out``: ``fused/NAME.png`` (colour), ``metrics.json`` (per image,
mean, the config, timing percentiles), ``metrics.csv``, ``report.md`` and ``report.html`` (the
table, the timings, a per-image table, the plot, the contact sheet), ``plot.png`` and
``contact_sheet.png`` (thermal | visible | fused | prior, a few rows).
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
from typing import List, Optional

from .guard import stop_request
from .options import add_pair_choice, pair_choice
from .outputs import check_apart, config_inputs, pair_inputs, ReplacedFiles
from .outputs import check_output_dir
from .values import int_at_least, override
from ..config import load_config
from ..errors import InputError
from ..eval.datasets import choose_pairs, default_data_dir, Pair, split_used
from ..eval.evaluation import EVAL_OVERRIDES, run_evaluation
from ..eval.scoring import format_table
from ..pipeline.fusion_pipeline import FusionPipeline
from ..progress import Progress


def add_arguments(parser) -> None:
    src = parser.add_argument_group('input pairs')
    src.add_argument('--data', type=Path, default=None,
                     help='RoadScene-layout folder (ir/, vis/, split.json); default $SGDFUSE_DATA')
    src.add_argument('--ir', type=Path, help='folder of thermal images (instead of --data)')
    src.add_argument('--vis', type=Path, help='folder of visible images (instead of --data)')
    add_pair_choice(src)
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--config', type=Path, default=None,
                        help="config file (default: the package's config/fusion.yaml)")
    parser.add_argument('--set', dest='overrides', action='append', default=[], type=override,
                        metavar='NAME=VALUE', help='override a parameter (repeatable)')
    parser.add_argument('--label', default=None, help='name of this run in the report table')
    parser.add_argument('--contact-rows', type=int_at_least(0), default=6,
                        help='rows of the contact sheet (0: none)')
    parser.add_argument('--no-metrics', action='store_true', help='only fuse')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


def resolve_pairs(args) -> List[Pair]:
    """Return the pairs the options choose (:func:`~sgdfuse_ros.eval.datasets.choose_pairs`)."""
    data = None if (args.ir or args.vis) else (args.data or default_data_dir())
    return choose_pairs(data, args.ir, args.vis, **pair_choice(args))


MARKER = '.sgdfuse-evaluate'
OUTPUT_FILES = ('metrics.json', 'metrics.csv', 'report.md', 'report.html', 'plot.png',
                'contact_sheet.png')
OUTPUT_DIRS = ('fused', 'registered_sources')


def check_previous(out: Path) -> bool:
    """
    Tell whether ``out`` holds a previous ``sgdfuse evaluate`` run.

    A previous run (its marker file, or the files of a version without it) is replaced by a
    completed run; a ``fused/`` folder that this command did not write is refused (and never
    touched).
    """
    if (out / MARKER).is_file() or _earlier_run(out):
        return True
    if (out / 'fused').is_dir() and any((out / 'fused').iterdir()):
        raise InputError(f'--out {out}: {out / "fused"} holds files that sgdfuse evaluate did not '
                         f'write; choose another --out or empty it')
    return False


def _write_marker(folder: Path) -> None:
    (folder / 'fused').mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text('written by sgdfuse evaluate; a re-run replaces the fused/, '
                                 'registered_sources/, metrics and report of this folder once '
                                 'it has completed\n')


def _earlier_run(out: Path) -> bool:
    """Tell a run of a version without the marker: its metrics.json, report.md and fused/."""
    try:
        report = json.loads((out / 'metrics.json').read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(report, dict) and {'label', 'pairs', 'timings_ms'} <= set(report)
            and (out / 'report.md').is_file() and (out / 'fused').is_dir())


def split_file(args) -> Optional[Path]:
    """Return the split file ``resolve_pairs`` reads, if any (an input of the run)."""
    data = None if (args.ir or args.vis) else (args.data or default_data_dir())
    return split_used(data, args.ir, args.vis, args.split, args.subset)


def run_label(config: dict, pipeline) -> str:
    """
    Name the run by what runs, not by what was asked for.

    ``prior.source: sam`` without a usable checkpoint runs the thermal fallback prior, and
    ``device: cuda`` without a GPU runs on the CPU: the label says so.
    """
    parts = [config['first_stage.type'], f"K={config['refiner.steps']}"]
    prior = config['prior.source']
    if prior == 'sam' and getattr(pipeline.prior_source, 'unavailable', ''):
        parts.append('prior thermal (SAM fallback)')
    elif prior != 'thermal':  # the default is not named
        parts.append(f'prior {prior}')
    if config['device'] == 'cuda' and getattr(pipeline, 'device', 'cuda') != 'cuda':
        parts.append('cpu (no GPU)')
    return f"sgdfuse ({', '.join(parts)})"


def main(args) -> int:

    out = check_output_dir(args.out, '--out', children=OUTPUT_DIRS)
    pairs = resolve_pairs(args)
    overrides = dict(EVAL_OVERRIDES)
    overrides.update(dict(args.overrides))
    config = load_config(args.config, overrides)
    check_apart(pair_inputs(pairs, split_file(args)) + config_inputs(args.config, config),
                [('--out', out)])
    check_previous(out)
    # the pipeline is built (weights read and checked) before a previous run is touched; the new
    # run is written beside it and replaces it once complete
    with FusionPipeline(config) as pipeline:
        label = args.label or run_label(config, pipeline)
        # from here to the end a signal asks to stop at the next pair; what was fused is scored,
        # the report written and the outputs settled whatever else arrives
        stop = stop_request().protect()
        staged = ReplacedFiles(out, OUTPUT_DIRS + OUTPUT_FILES + (MARKER,), 'evaluate')
        report = None
        try:
            _write_marker(staged.path)
            with Progress(len(pairs), 'fusing', unit='pair', quiet=args.quiet) as bar:
                report = run_evaluation(pairs, staged.path, config, label, args.contact_rows,
                                        not args.no_metrics, lambda done, total: bar.update(),
                                        stop, pipeline=pipeline, shown_as=out)
        finally:
            ready = bool(report and not report['write_error'] and not report['interrupted']
                         and report['fused'])
            committed = staged.finish(ready)
    if report.get('mean'):
        print(format_table({label: report['mean']}))
    if committed:
        where = f'outputs in {out} (report.md)'
        if staged.previous and not args.quiet:
            print(f'evaluate: replaced the previous run in {out}', file=sys.stderr)
    else:
        where = (f'nothing of this run was kept: the previous results in {out} are as they '
                 f'were')
    done = (f"{report['fused']} of {report['pairs']} pairs fused, {report['failed']} failed; "
            f'{where}')
    if report['write_error']:
        raise InputError(f"{report['write_error']}; {done}")
    if report['interrupted']:
        raise stop.interrupted(done)
    if report['failed']:  # said even with --quiet (not progress: work that was not done)
        first = next(iter(report['failures'].items()))
        print(f"evaluate: {report['failed']} pair(s) failed (first: {first[0]}: {first[1]}); "
              f'see report.md', file=sys.stderr)
    if report['fused'] == 0:
        raise InputError(f"all {report['pairs']} pairs failed (first: "
                         f"{next(iter(report['failures'].items()))}); "
                         + (f"report: {out / 'report.md'}" if committed else where))
    print(f"fused images: {out / 'fused'}")
    print(f"report:       {out / 'report.md'}")
    return 0
