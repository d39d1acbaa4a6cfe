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
Target preservation on MSRS, measured with the human-annotated boxes (not with our own prior).

For every labelled person/car box (``labels/infrared/<split>/``) that the thermal image shows warm
(box mean >= 10 grey levels above a 4-pixel ring around it), the fused box-vs-ring contrast
divided by the thermal one (``sgdfuse_ros.eval.target_boxes``); per row the median and the share
of boxes kept at >= 0.95, over all boxes and for night (``N``) and day (``D``) frames. The fused
image is the pipeline's colour output read as gray, as the metrics read it.

Rows: the Laplacian baseline, the default (thermal fallback prior, K = 2), the default at K = 0,
the no-prior ablation (``prior.source: none``), and the SAM path given SAM-like masks drawn from
the labelled boxes (``sgdfuse_ros.prior.boxes``: the same format SAM's merge produces);
``--prev DIR`` adds the weights in DIR (first_stage.pt, refiner.pt) with and without prior.

    python benchmarks/target_contrast.py --data ../shared/data/msrs128 --subset test \
        [--prev PREV] [--set first_stage.weights=W.pt ...] [--tag NAME]

``--subset val`` scores the held-out MSRS TRAIN pairs the training selects on (never test).
Writes ``benchmarks/results/target_contrast_<subset>[_<tag>].{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time

from harness import (add_data_options, add_prev_option, command, prev_weights, RESULTS,
                     subset_pairs, write_results)
from sgdfuse_ros.config import load_config, parse_override
from sgdfuse_ros.eval.evaluation import EVAL_OVERRIDES
from sgdfuse_ros.eval.target_boxes import fused_ratios, load_boxed, summarise
from sgdfuse_ros.training.data import VAL_EVERY

ROWS = {
    'Laplacian baseline': ({'first_stage.type': 'laplacian', 'refiner.steps': 0}, None),
    'default (thermal prior, K=2)': ({}, None),
    'default, K=0': ({'refiner.steps': 0}, None),
    'no prior (prior.source: none)': ({'prior.source': 'none'}, None),
    'SAM-like masks from the boxes (K=2)': ({}, 'boxes'),
}


def fuse_rows(pairs, label_dir_subset, data, rows, common):
    """{row: {pair name: [ratio per warm box]}} and the warm boxes per pair."""
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
    loaded = load_boxed(pairs, data, label_dir_subset)
    out, seconds = {}, {}
    for label, (overrides, prior_mode) in rows.items():
        base = {} if overrides.get('first_stage.type') == 'laplacian' else common
        config = load_config(overrides={**EVAL_OVERRIDES, **base, **overrides})
        started = time.perf_counter()
        with FusionPipeline(config) as pipeline:
            out[label] = fused_ratios(pipeline, loaded, prior_mode)
        seconds[label] = time.perf_counter() - started
        print(f'{label}: {time.perf_counter() - started:.1f} s', file=sys.stderr)
    return out, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    add_data_options(parser, msrs=True)
    add_prev_option(parser)
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='NAME=VALUE', help='override for every network row')
    parser.add_argument('--only', action='append', default=[],
                        help='only rows whose label starts with this (repeatable)')
    parser.add_argument('--tag', default='', help='suffix of the results files')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (1: far faster than 2 on a shared 2-core CPU)')
    args = parser.parse_args()
    import torch
    torch.set_num_threads(max(1, args.threads))
    if not (args.data / 'labels' / 'infrared').is_dir():
        print(f'target_contrast: error: {args.data} has no labels/infrared', file=sys.stderr)
        return 2
    pairs = subset_pairs(args.data, args.subset, VAL_EVERY['msrs'])
    label_subset = 'test' if args.subset == 'test' else 'train'
    common = dict(parse_override(text) for text in args.overrides)
    rows = dict(ROWS)
    if args.prev is not None:
        prev = prev_weights(args.prev)
        rows['previous weights (K=2)'] = (prev, None)
        rows['previous weights, no prior'] = (dict(prev, **{'prior.source': 'none'}), None)
    if args.only:
        rows = {k: v for k, v in rows.items() if any(k.startswith(o) for o in args.only)}
    ratios, seconds = fuse_rows(pairs, label_subset, args.data, rows, common)
    summary = {label: summarise(r) for label, r in ratios.items()}
    n = next(iter(summary.values()))['all']['boxes']
    lines = [f'# Target contrast kept, MSRS {args.subset} ({len(pairs)} pairs, {n} warm '
             'person/car boxes)', '',
             'Fused box-vs-ring contrast / thermal box-vs-ring contrast per warm labelled box '
             '(`sgdfuse_ros.eval.target_boxes`); median, and share of boxes >= 0.95.', '',
             '| row | median | night | day | kept >= 0.95 | night | day |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for label, s in summary.items():
        lines.append(f"| {label} | {s['all']['median']:.3f} | {s['night']['median']:.3f} | "
                     f"{s['day']['median']:.3f} | {100 * s['all']['kept']:.0f} % | "
                     f"{100 * s['night']['kept']:.0f} % | {100 * s['day']['kept']:.0f} % |")
    first = next(iter(summary.values()))
    lines += ['', f"Boxes: {first['night']['boxes']} night, {first['day']['boxes']} day."]
    if common:
        lines += ['', 'Network rows with: ' + ', '.join(f'`{k}={v}`' for k, v in common.items())]
    text = '\n'.join(lines) + '\n'
    print(text)
    name = f'target_contrast_{args.subset}' + (f'_{args.tag}' if args.tag else '')
    write_results(RESULTS / name,
                  {'summary': summary, 'ratios': ratios, 'seconds': seconds, 'overrides': common,
                   'command': command()}, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
