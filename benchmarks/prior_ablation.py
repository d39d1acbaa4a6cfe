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
Prior ablation: the first stage with and without the semantic prior.

The same weights run with an empty prior (``prior.source=none``), scored on the warm targets the
prior marks.

For each pair, the targets are where the thermal fallback prior's ``targets`` map is > 0.5 (pairs
with < 0.2 % target pixels are skipped) and their surround a 15-pixel ring around them. Per run:

- ``contrast``: mean fused luminance in the targets minus in their surround (0..1; the thermal
  image's own value is printed as the reference: warm targets should stand out as they do there);
- ``abs(F - ir)``: mean absolute difference to the thermal image inside the targets (lower =
  the targets keep their thermal level);
- the 9 headline metrics over all pairs of the subset.

    python benchmarks/prior_ablation.py --data ../shared/data/roadscene --subset val [--steps 0]

Writes ``benchmarks/results/prior_ablation_<subset>.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2
from harness import add_data_options, command, require_data, RESULTS, subset_pairs, write_results
import numpy as np
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.datasets import read_pair
from sgdfuse_ros.eval.evaluation import EVAL_OVERRIDES, run_evaluation
from sgdfuse_ros.eval.metrics import HEADLINE_METRICS
from sgdfuse_ros.pipeline.images import split_luma
from sgdfuse_ros.prior.thermal import ThermalPrior

MIN_TARGET = 0.002
RING = 15


def target_masks(pair):
    thermal, visible = read_pair(pair)
    ir = thermal.astype(np.float32) / 255.0
    vis_y, _ = split_luma(visible)
    targets = ThermalPrior()(ir, vis_y).targets > 0.5
    if targets.mean() < MIN_TARGET:
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING + 1, 2 * RING + 1))
    ring = cv2.dilate(targets.astype(np.uint8), kernel).astype(bool) & ~targets
    return ir, targets, ring


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    add_data_options(parser)
    parser.add_argument('--steps', type=int, default=0, help='refiner steps of both runs')
    parser.add_argument('--out', type=Path, default=Path('outputs/prior_ablation'))
    args = parser.parse_args()
    require_data(args.data, 'prior_ablation')
    pairs = subset_pairs(args.data, args.subset)
    runs = {'thermal prior': {}, 'empty prior': {'prior.source': 'none'}}
    rows = {}
    masks = {p.name: target_masks(p) for p in pairs}
    used = [n for n, m in masks.items() if m is not None]
    thermal_contrast = float(np.mean([m[0][m[1]].mean() - m[0][m[2]].mean()
                                      for m in masks.values() if m is not None]))
    for label, overrides in runs.items():
        network = {'first_stage.type': 'network', 'refiner.steps': args.steps}
        config = load_config(overrides=dict(EVAL_OVERRIDES, **network, **overrides))
        folder = args.out / args.subset / label.replace(' ', '_')
        report = run_evaluation(pairs, folder, config, label, contact_rows=0)
        contrast, error = [], []
        for name in used:
            ir, targets, ring = masks[name]
            fused = cv2.imread(str(folder / 'fused' / f'{name}.png'),
                               cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
            contrast.append(fused[targets].mean() - fused[ring].mean())
            error.append(np.abs(fused[targets] - ir[targets]).mean())
        rows[label] = {**{k: report['mean'][k] for k in HEADLINE_METRICS},
                       'contrast': float(np.mean(contrast)), 'abs_to_ir': float(np.mean(error))}
    head = '| run | ' + ' | '.join(HEADLINE_METRICS) + ' | contrast | abs(F - ir) |'
    lines = [f'# Prior ablation, RoadScene {args.subset} ({len(pairs)} pairs; target measures '
             f'on the {len(used)} with warm targets), refiner K={args.steps}', '',
             f"Thermal image's own target-vs-surround contrast: {thermal_contrast:.3f}", '',
             head, '|---' * (len(HEADLINE_METRICS) + 3) + '|']
    for label, r in rows.items():
        lines.append(f'| {label} | ' + ' | '.join(f'{r[k]:.4g}' for k in HEADLINE_METRICS)
                     + f" | {r['contrast']:.3f} | {r['abs_to_ir']:.3f} |")
    text = '\n'.join(lines) + '\n'
    print(text)
    write_results(RESULTS / f'prior_ablation_{args.subset}',
                  {'rows': rows, 'thermal_contrast': thermal_contrast,
                   'pairs_with_targets': used, 'command': command()}, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
