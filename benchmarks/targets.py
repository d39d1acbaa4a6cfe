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
Can a detector trust ``semantic/targets``? The published target map against the human boxes.

On MSRS-128 (``labels/infrared/<split>/``), day (``D``) and night (``N``) frames apart:

- recall: the share of labelled persons and cars that the thermal image shows warm (box mean at
  least 10 grey levels above a 4-pixel ring, ``sgdfuse_ros.eval.target_boxes.warm_boxes``) with
  at least 30 % of the box covered by target pixels;
- precision: the share of target pixels inside a labelled box (person, bicycle or car) grown by
  25 % about its centre.

A target pixel is a value of at least 64 (of 255) in the published mono8 map. Rows: the prior's
own targets map (what ``semantic/targets`` carried before: every warm region of the default
thermal prior), the published selection (``sgdfuse_ros.prior.targets.TargetSelector``: scored
compact warm objects), and that selection with every candidate kept (``min_score`` 0).

    python benchmarks/targets.py --data ../shared/data/msrs128 --split test
    python benchmarks/targets.py --data ../shared/data/msrs128 --split train --fit

``--fit`` (train split only) refits the selector's logistic weights on the train candidates and
prints them with recall/precision per score threshold, to choose ``MIN_SCORE``; the test split
is never used for fitting. Writes ``benchmarks/results/targets_<split>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import cv2
from harness import command, RESULTS, write_results
import numpy as np
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.target_boxes import (grown_boxes_mask, label_file, read_boxes,
                                           recall_precision, target_counts, TARGET_LEVEL,
                                           warm_boxes)
from sgdfuse_ros.prior.targets import TargetSelector
from sgdfuse_ros.prior.thermal import ThermalPrior


def load(data: Path, split: str):
    """[(name, thermal uint8, warm boxes, grown mask)] of the split."""
    names = json.loads((data / 'split.json').read_text())[split]
    out = []
    for name in names:
        stem = Path(name).stem
        thermal = cv2.imread(str(data / 'ir' / name), cv2.IMREAD_GRAYSCALE)
        if thermal is None:
            raise SystemExit(f'targets: error: cannot read {data / "ir" / name}')
        path = label_file(data, split, stem)
        warm = warm_boxes(thermal, read_boxes(path, thermal.shape))
        grown = grown_boxes_mask(read_boxes(path, thermal.shape, (0, 1, 2)), thermal.shape)
        out.append((stem, thermal, warm, grown))
    return out


def rows():
    prior = ThermalPrior.from_config(load_config())
    selector, everything = TargetSelector(), TargetSelector(min_score=0.0)
    return {
        'prior targets (published before)': lambda th: prior(th).targets_u8(),
        'scored warm targets (published now)': lambda th: selector(th).targets_u8(),
        'every candidate (min_score 0)': lambda th: everything(th).targets_u8(),
    }


def measure(frames, make_map) -> dict:
    counts = {}
    for stem, thermal, warm, grown in frames:
        target = make_map(thermal.astype(np.float32) / 255.0) >= TARGET_LEVEL
        counts[stem] = target_counts(target, warm, grown)
    return counts


def fit(frames) -> None:
    """Refit the logistic weights on the frames' candidates and print a threshold sweep."""
    import torch
    selector = TargetSelector(min_score=0.0)
    features, right, weight, per_frame = [], [], [], []
    for stem, thermal, warm, grown in frames:
        found, labels, _, _ = selector.candidates(thermal.astype(np.float32) / 255.0)
        items = []
        for index, _, area, f in found:
            mask = labels == index
            inside = int((mask & grown).sum())
            features.append(f)
            right.append(inside >= 0.5 * area)
            weight.append(area)
            items.append((len(features) - 1, mask, area, inside))
        per_frame.append((stem, warm, grown, items))
    x = np.asarray(features, np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(right, dtype=torch.float32)
    wt = torch.tensor(np.sqrt(weight), dtype=torch.float32)  # big regions weigh more
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 1)
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=200)

    def closure():
        optimiser.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            model(xt)[:, 0], yt, reduction='none') * wt).mean() + \
            1e-3 * (model.weight ** 2).sum()
        loss.backward()
        return loss
    optimiser.step(closure)
    w = model.weight.detach().double().numpy()[0]
    weights = w / sd
    bias = float(model.bias.detach()) - float((w * mu / sd).sum())
    print('WEIGHTS =', np.round(weights, 3).tolist(), f'\nBIAS = {bias:.3f}')
    z = x @ weights + bias
    scores = 1.0 / (1.0 + np.exp(-z))
    print('| min_score | day recall | day precision | night recall | night precision |')
    for threshold in (0.0, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.3):
        counts = {}
        for stem, warm, grown, items in per_frame:
            target = np.zeros(grown.shape, bool)
            for k, mask, _, _ in items:
                if scores[k] >= threshold:
                    target |= mask
            counts[stem] = target_counts(target, warm, grown)
        s = recall_precision(counts)
        print(f"| {threshold:.2f} | {s['day']['recall']:.3f} | {s['day']['precision']:.3f} | "
              f"{s['night']['recall']:.3f} | {s['night']['precision']:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='the msrs128 folder')
    parser.add_argument('--split', default='test', choices=('train', 'test'))
    parser.add_argument('--fit', action='store_true',
                        help='refit the selector on the train split and print a sweep')
    args = parser.parse_args()
    if not (args.data / 'labels' / 'infrared' / args.split).is_dir():
        print(f'targets: error: {args.data} has no labels/infrared/{args.split}',
              file=sys.stderr)
        return 2
    if args.fit and args.split != 'train':
        print('targets: error: --fit only on the train split', file=sys.stderr)
        return 2
    frames = load(args.data, args.split)
    if args.fit:
        fit(frames)
        return 0
    summary, seconds = {}, {}
    for label, make_map in rows().items():
        started = time.perf_counter()
        summary[label] = recall_precision(measure(frames, make_map))
        seconds[label] = time.perf_counter() - started
    warm = summary[next(iter(summary))]
    lines = [f'# Published targets vs human boxes, MSRS-128 {args.split} ({len(frames)} pairs; '
             f"{warm['day']['warm']} warm boxes by day, {warm['night']['warm']} by night)", '',
             'Recall: warm labelled persons/cars with >= 30 % of the box covered by target '
             'pixels (mono8 >= 64). Precision: target pixels inside a labelled box grown by '
             '25 %.', '',
             '| targets map | day recall | day precision | night recall | night precision |',
             '|---|---:|---:|---:|---:|']
    for label, s in summary.items():
        lines.append(f"| {label} | {s['day']['recall']:.3f} | {s['day']['precision']:.3f} | "
                     f"{s['night']['recall']:.3f} | {s['night']['precision']:.3f} |")
    lines += ['', f'Command: `{command()}`']
    text = '\n'.join(lines) + '\n'
    print(text)
    write_results(RESULTS / f'targets_{args.split}',
                  {'summary': summary, 'seconds': seconds, 'command': command()}, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
