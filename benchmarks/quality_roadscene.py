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
Quality table on the RoadScene test split (50 pairs): ours against the baselines and peers.

Rows: the classical Laplacian baseline, the peer outputs in ../shared/data/peers (SAGE), the
published CDDFuse row on the same 50 pairs, our first stage, our first stage + refiner at K = 1, 2,
4, and the ablation without prior. Every row except the published one is scored here with
``sgdfuse_ros.eval.metrics`` (the reference evaluator's conventions).
Prints the table with win counts
and writes ``benchmarks/results/quality_roadscene.{json,md}``.

    python benchmarks/quality_roadscene.py --data ../shared/data/roadscene [--out outputs/quality]

``--subset val`` scores the 12 held-out RoadScene TRAIN pairs instead (the training code's own
split, ``split_train_names``: what model selection may look at; no published or peer rows there)
and writes ``quality_roadscene_val[_TAG]``; ``--set NAME=VALUE`` overrides the 'ours' rows
(a candidate's weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

from harness import (add_prev_option, command, prev_weights, require_data, RESULTS,
                     subset_pairs, wins, write_results)
from sgdfuse_ros.config import load_config, parse_override
from sgdfuse_ros.eval.datasets import default_data_dir
from sgdfuse_ros.eval.evaluation import EVAL_OVERRIDES, run_evaluation
from sgdfuse_ros.eval.metrics import HEADLINE_METRICS
from sgdfuse_ros.eval.scoring import format_table, score_folders
from sgdfuse_ros.training.data import VAL_EVERY
from sky_check import MIN_AREA, pair_region

# Published on the same 50 pairs (CDDFuse, CVPR 2023, RoadScene table; SSIM with data_range=2).
CDDFUSE = {'EN': 7.44, 'SD': 54.67, 'SF': 16.36, 'MI': 2.30, 'SCD': 1.81, 'VIF': 0.69,
           'Qabf': 0.52, 'SSIM': 0.98}

CONFIGS = {
    # the classical method as published: the visible colours only (no colour.warm_tint)
    'Laplacian baseline': {'first_stage.type': 'laplacian', 'refiner.steps': 0,
                           'colour.warm_tint': 0.0},
    'ours: first stage': {'first_stage.type': 'network', 'refiner.steps': 0},
    'ours: + refiner K=1': {'first_stage.type': 'network', 'refiner.steps': 1},
    'ours: + refiner K=2': {'first_stage.type': 'network', 'refiner.steps': 2},
    'ours: + refiner K=4': {'first_stage.type': 'network', 'refiner.steps': 4},
    'ours: first stage, no prior (ablation)': {'first_stage.type': 'network', 'refiner.steps': 0,
                                               'prior.source': 'none'},
    'ours: default, no prior (ablation, K=2)': {'first_stage.type': 'network',
                                                'refiner.steps': 2, 'prior.source': 'none'},
}
PREV_ROW = 'previous weights (RoadScene only, K=2)'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', type=Path, default=default_data_dir(beside_checkout=True))
    parser.add_argument('--peers', type=Path, default=None,
                        help='folder of peer methods (default: DATA/../peers)')
    parser.add_argument('--out', type=Path, default=Path('outputs/quality'))
    parser.add_argument('--default-row', default=None,
                        help="row that is 'ours (default configuration)' (default: the one "
                             'matching config/fusion.yaml)')
    add_prev_option(parser, ' (a row)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--subset', default='test', choices=('test', 'val'),
                        help='test: the 50 test pairs; val: the 12 held-out TRAIN pairs')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='NAME=VALUE', help="override for the 'ours' rows (candidates)")
    parser.add_argument('--tag', default='', help='suffix of the default results name')
    parser.add_argument('--results', type=Path, default=None,
                        help='results path without suffix (default: benchmarks/results/'
                             'quality_roadscene[_val][_TAG])')
    args = parser.parse_args()
    if args.results is None:
        name = 'quality_roadscene' + ('' if args.subset == 'test' else '_val') + \
            (f'_{args.tag}' if args.tag else '')
        args.results = RESULTS / name
    common = dict(parse_override(text) for text in args.overrides)
    require_data(args.data, 'quality_roadscene')
    import torch
    torch.set_num_threads(max(1, args.threads))
    pairs = subset_pairs(args.data, args.subset, VAL_EVERY['roadscene'])
    defaults = load_config()
    rows, timing, per_image = {}, {}, {}
    default_row = args.default_row
    configs = dict(CONFIGS)
    if args.prev is not None:
        configs[PREV_ROW] = {'first_stage.type': 'network', 'refiner.steps': 2,
                             **prev_weights(args.prev)}
    out_root = args.out if args.subset == 'test' else args.out / 'val'
    for label, overrides in configs.items():
        extra = common if label.startswith('ours') else {}
        config = load_config(overrides=dict(EVAL_OVERRIDES, **extra, **overrides))
        if default_row is None and all(defaults[k] == v for k, v in overrides.items()
                                       if k in ('first_stage.type', 'refiner.steps')) \
                and 'prior.source' not in overrides and 'first_stage.weights' not in overrides:
            default_row = label
        started = time.perf_counter()
        report = run_evaluation(pairs, out_root / label.replace(' ', '_').replace(':', '')
                                .replace(',', '').replace('(', '').replace(')', '')
                                .replace('+', 'plus').replace('=', ''), config, label)
        rows[label] = report['mean']
        per_image[label] = report['per_image']
        timing[label] = {'wall_s': time.perf_counter() - started,
                         'median_total_ms': report['timings_ms']['total']['median']}
        print(f"{label}: done in {timing[label]['wall_s']:.1f} s", file=sys.stderr)

    peers = args.peers or (Path(args.data).parent / 'peers')
    names = [p.name for p in pairs]
    if args.subset == 'test':  # peers and the published row exist for the 50 test pairs only
        for peer in sorted(peers.glob('*/roadscene50')) if peers.is_dir() else []:
            _, mean = score_folders(peer, Path(args.data) / 'ir', Path(args.data) / 'vis', names)
            rows[f'{peer.parent.name} (peer outputs)'] = mean
        rows['CDDFuse (published)'] = CDDFUSE

    ours = rows[default_row]
    comparisons = {}
    for label, values in rows.items():
        if label != default_row:
            won, of = wins(ours, values)
            comparisons[label] = {'wins': won, 'of': of}
    first = rows['ours: first stage']
    refiner_checks = {}
    for k in (1, 2, 4):
        refined = rows[f'ours: + refiner K={k}']
        better = sum(refined[m] > first[m] for m in HEADLINE_METRICS)
        worst = min((refined[m] - first[m]) / abs(first[m]) for m in HEADLINE_METRICS)
        refiner_checks[k] = {'better_than_first_stage': better, 'of': len(HEADLINE_METRICS),
                             'worst_relative_change': worst}

    # where the default and the baseline differ: pairs with daylight sky (visible-led regions,
    # as benchmarks/sky_check.py finds them) against the rest
    sky = {p.name for p in pairs if pair_region(p)[2].mean() >= MIN_AREA}
    split = {}
    for label in (default_row, 'Laplacian baseline'):
        for group, inside in (('with daylight sky', True), ('without', False)):
            values = [v for n, v in per_image[label].items() if (n in sky) == inside]
            split[f'{label}, {group} ({len(values)})'] = {
                m: sum(v[m] for v in values) / len(values) for m in HEADLINE_METRICS}

    table = format_table(rows)
    title = 'test' if args.subset == 'test' else 'held-out TRAIN pairs (validation)'
    lines = [f'# Quality on RoadScene {title} ({len(pairs)} pairs)', '',
             f'Default configuration row: **{default_row}**. Metrics: reference-evaluator '
             'conventions (SSIM summed over both sources, data_range=2).', '', table, '',
             '## Wins of the default configuration, metric by metric', '',
             '| against | metrics won |', '|---|---|']
    lines += [f"| {k} | {v['wins']} of {v['of']} |" for k, v in comparisons.items()]
    lines += ['', '## Refiner against the first stage', '',
              '| K | metrics improved | worst relative change |', '|---|---|---|']
    lines += [f"| {k} | {v['better_than_first_stage']} of {v['of']} | "
              f"{100 * v['worst_relative_change']:+.2f} % |" for k, v in refiner_checks.items()]
    lines += ['', '## Default and baseline, pairs with and without daylight sky', '',
              format_table(split)]
    lines += ['', '## Time per frame (median, this machine)', '', '| row | ms |', '|---|---|']
    lines += [f"| {k} | {v['median_total_ms']:.1f} |" for k, v in timing.items()]
    text = '\n'.join(lines) + '\n'
    print(text)
    write_results(args.results,
                  {'rows': rows, 'default_row': default_row, 'wins': comparisons,
                   'refiner': refiner_checks, 'timing': timing, 'sky_split': split,
                   'subset': args.subset, 'overrides': common, 'command': command()}, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
