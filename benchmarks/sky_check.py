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
Check that the fused image keeps the visible view in visible-led regions.

Visible-led regions are the daylight sky and road paint, for example.

The no-reference fusion metrics reward copying the thermal camera's cold, noisy sky (every extra
gradient raises SF, AG, EN and Qabf). This check measures what a person sees instead, inside the
regions where the visible image is much brighter than the thermal one (``visible_lead_map`` of
``training/losses.py`` > 0.5, computed on the sources; images where it covers < 5 % are skipped):

- ``level``: mean fused luminance minus mean visible luminance there (grey levels; the thermal
  camera's own value is in the ``thermal`` row: a fused sky that copied it is that dark);
- ``texture``: mean absolute fine detail (image minus its 5x5 Gaussian blur) of the fused image,
  divided by the visible image's (1 = as smooth as the visible sky);
- ``thermal detail``: correlation of the fused and thermal fine details there (how much of the
  thermal clutter was copied; the thermal row is 1 by definition).

    python benchmarks/sky_check.py --data ../shared/data/roadscene --subset val
    python benchmarks/sky_check.py --subset val --label candidate --set first_stage.weights=W.pt

``--subset val`` is the 12 held-out TRAIN pairs of ``sgdfuse train`` (model selection), ``test``
the 50 test pairs (report only). Prints a table and writes ``benchmarks/results/sky_<subset>``
(``.json``, ``.md``); ``--label``/``--set`` add a row of another configuration (repeatable
``--set``) to the default rows (thermal, visible, Laplacian baseline, default configuration).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2
from harness import add_data_options, command, require_data, RESULTS, subset_pairs, write_results
import numpy as np
from sgdfuse_ros.config import load_config, parse_override
from sgdfuse_ros.eval.evaluation import EVAL_OVERRIDES, run_evaluation
from sgdfuse_ros.training.losses import visible_lead_map
import torch

MIN_AREA = 0.05


def detail(gray: np.ndarray) -> np.ndarray:
    return gray - cv2.GaussianBlur(gray, (5, 5), 0)


def region_stats(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, mask: np.ndarray) -> dict:
    """Grey images (float, 0..255) and a boolean mask -> level, texture, thermal detail."""
    df, dv, di = detail(fused)[mask], detail(vis)[mask], detail(ir)[mask]
    corr = np.corrcoef(df, di)[0, 1] if df.std() > 0 and di.std() > 0 else 0.0
    return {'level': float(fused[mask].mean() - vis[mask].mean()),
            'texture': float(np.abs(df).mean() / max(np.abs(dv).mean(), 1e-6)),
            'thermal_detail': float(corr)}


def lead_mask(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)[None, None]  # noqa: E731
    return visible_lead_map(t(ir), t(vis))[0, 0].numpy() > 0.5


def gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f'sky_check: error: cannot read {path}')
    return image.astype(np.float64)


def pair_region(pair):
    """Return (thermal, visible, visible-led mask) of a pair, grey, at the visible size."""
    ir, vis = gray(pair.thermal), gray(pair.visible)
    if ir.shape != vis.shape:
        ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]))
    return ir, vis, lead_mask(ir, vis)


def score(rows_dirs: dict, pairs) -> dict:
    """{label: folder of <name>.png or a source key} -> {label: mean stats} over the pairs."""
    per = {label: [] for label in rows_dirs}
    used = []
    for pair in pairs:
        ir, vis, mask = pair_region(pair)
        if mask.mean() < MIN_AREA:
            continue
        used.append(pair.name)
        for label, where in rows_dirs.items():
            fused = {'thermal': ir, 'visible': vis}.get(where)
            if fused is None:
                fused = gray(Path(where) / f'{pair.name}.png')
            per[label].append(region_stats(fused, ir, vis, mask))
    means = {label: {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
             for label, stats in per.items() if stats}
    return {'pairs': used, 'mean': means}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    add_data_options(parser)
    parser.add_argument('--out', type=Path, default=Path('outputs/sky_check'))
    parser.add_argument('--label', default=None, help='name of the extra row')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        help="KEY=VALUE of the extra row's configuration (repeatable)")
    parser.add_argument('--results', type=Path, default=None)
    args = parser.parse_args()
    require_data(args.data, 'sky_check')
    pairs = subset_pairs(args.data, args.subset)
    configs = {'Laplacian baseline': {'first_stage.type': 'laplacian', 'refiner.steps': 0},
               'default configuration': {}}
    if args.overrides:
        configs[args.label or 'extra'] = dict(parse_override(t) for t in args.overrides)
    rows = {'thermal': 'thermal', 'visible': 'visible'}
    for label, overrides in configs.items():
        folder = args.out / args.subset / label.replace(' ', '_')
        run_evaluation(pairs, folder, load_config(overrides=dict(EVAL_OVERRIDES, **overrides)),
                       label, contact_rows=0, with_metrics=False)
        rows[label] = str(folder / 'fused')
    result = score(rows, pairs)
    lines = [f"# Visible-led regions, RoadScene {args.subset} ({len(result['pairs'])} of "
             f'{len(pairs)} pairs cover >= {MIN_AREA:.0%})', '',
             '| row | level (grey levels vs visible) | texture (x visible) '
             '| thermal detail corr |',
             '|---|---:|---:|---:|']
    for label, m in result['mean'].items():
        lines.append(f"| {label} | {m['level']:+.1f} | {m['texture']:.2f} | "
                     f"{m['thermal_detail']:.2f} |")
    text = '\n'.join(lines) + '\n'
    print(text)
    write_results(args.results or RESULTS / f'sky_{args.subset}',
                  {**result, 'configs': configs, 'command': command()}, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
