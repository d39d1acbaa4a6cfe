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
Quality table on the MSRS test split (361 pairs, 128x128, another camera rig than RoadScene).

Rows: the classical Laplacian baseline, the previous (RoadScene-only) weights (``--prev DIR``:
its first_stage.pt and refiner.pt, K = 2), ours at K = 0 and at the default K = 2, and the
no-prior ablation (``prior.source: none``, K = 2). Scored with ``sgdfuse_ros.eval.metrics`` (the
reference evaluator's conventions) by ``sgdfuse evaluate``'s own routine; win counts of the
default against the previous weights and the baseline; contact sheets of day and night pairs
(the default row) under ``--out``.

    python benchmarks/quality_msrs.py --data ../shared/data/msrs128 --prev PREV

``--subset val`` scores the held-out MSRS TRAIN pairs instead (what selection may look at).
Writes ``benchmarks/results/quality_msrs[_val].{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

from harness import (add_data_options, add_prev_option, command, prev_weights, RESULTS,
                     subset_pairs, wins, write_results)
from sgdfuse_ros.config import load_config, parse_override
from sgdfuse_ros.eval.evaluation import EVAL_OVERRIDES, run_evaluation
from sgdfuse_ros.eval.metrics import HEADLINE_METRICS
from sgdfuse_ros.eval.scoring import format_table
from sgdfuse_ros.training.data import VAL_EVERY

DEFAULT_ROW = 'ours: default (K=2)'
CONFIGS = {
    # the classical method as published: the visible colours only (no colour.warm_tint)
    'Laplacian baseline': {'first_stage.type': 'laplacian', 'refiner.steps': 0,
                           'colour.warm_tint': 0.0},
    'ours: first stage (K=0)': {'refiner.steps': 0},
    DEFAULT_ROW: {},
    'ours: no prior (ablation, K=2)': {'prior.source': 'none'},
}
PREV_ROW = 'previous weights (RoadScene only, K=2)'


def folder_name(label: str) -> str:
    keep = ''.join(c if c.isalnum() else '_' for c in label)
    return '_'.join(part for part in keep.split('_') if part)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    add_data_options(parser, subset='test', msrs=True)
    add_prev_option(parser)
    parser.add_argument('--out', type=Path, default=Path('outputs/quality_msrs'))
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='NAME=VALUE', help="override for the 'ours' rows (candidates)")
    parser.add_argument('--tag', default='', help='suffix of the results files')
    args = parser.parse_args()
    common = dict(parse_override(text) for text in args.overrides)
    import torch
    torch.set_num_threads(max(1, args.threads))
    if not (args.data / 'split.json').is_file():
        print(f'quality_msrs: error: {args.data} has no split.json', file=sys.stderr)
        return 2
    pairs = subset_pairs(args.data, args.subset, VAL_EVERY['msrs'])
    configs = dict(CONFIGS)
    if args.prev is not None:
        configs[PREV_ROW] = prev_weights(args.prev)
    # contact sheets: as many day as night pairs, spread over the split
    night = [p for p in pairs if p.name.upper().endswith('N')]
    day = [p for p in pairs if not p.name.upper().endswith('N')]
    rows, timing, per_image = {}, {}, {}
    for label, overrides in configs.items():
        extra = common if label.startswith('ours') else {}
        config = load_config(overrides=dict(EVAL_OVERRIDES, **extra, **overrides))
        started = time.perf_counter()
        report = run_evaluation(pairs, args.out / args.subset / folder_name(label), config,
                                label, contact_rows=0)
        rows[label] = report['mean']
        per_image[label] = report['per_image']
        timing[label] = time.perf_counter() - started
        print(f'{label}: done in {timing[label]:.1f} s', file=sys.stderr)
        if label in (DEFAULT_ROW, PREV_ROW, 'Laplacian baseline'):
            for group, chosen in (('day', day), ('night', night)):
                step = max(1, len(chosen) // 6)
                run_evaluation(chosen[::step][:6], args.out / args.subset / 'sheets'
                               / f'{folder_name(label)}_{group}', config, label,
                               contact_rows=6, with_metrics=False)
    ours = rows[DEFAULT_ROW]
    comparisons = {label: dict(zip(('wins', 'of'), wins(ours, values)))
                   for label, values in rows.items() if label != DEFAULT_ROW}
    split = {}
    for label in rows:
        for group, chosen in (('day', day), ('night', night)):
            names = {p.name for p in chosen}
            values = [v for n, v in per_image[label].items() if n in names]
            if values:
                split[f'{label}, {group} ({len(values)})'] = {
                    m: sum(v[m] for v in values) / len(values) for m in HEADLINE_METRICS}
    title = 'test split' if args.subset == 'test' else 'held-out TRAIN pairs (validation)'
    lines = [f'# Quality on MSRS {title} ({len(pairs)} pairs, 128x128)', '',
             f'Default configuration row: **{DEFAULT_ROW}**. Metrics: reference-evaluator '
             'conventions (SSIM summed over both sources, data_range=2).', '',
             format_table(rows), '', '## Wins of the default configuration, metric by metric',
             '', '| against | metrics won |', '|---|---|']
    lines += [f"| {k} | {v['wins']} of {v['of']} |" for k, v in comparisons.items()]
    lines += ['', '## Day and night frames', '', format_table(split)]
    text = '\n'.join(lines) + '\n'
    print(text)
    name = 'quality_msrs' + ('' if args.subset == 'test' else '_val') + \
        (f'_{args.tag}' if args.tag else '')
    write_results(RESULTS / name,
                  {'rows': rows, 'default_row': DEFAULT_ROW, 'wins': comparisons,
                   'day_night': split, 'seconds': timing, 'overrides': common,
                   'command': command()}, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
