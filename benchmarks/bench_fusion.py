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
Time the learned stages alone at 640x512.

Budget on the 2-core CPU: first stage <= 25 ms median, refiner with K=2 <= 100 ms.

    nice -n 10 .venv/bin/python benchmarks/bench_fusion.py [--size 640x512] [--frames 30]
        [--threads 2] [--device cpu]

Times the plug-ins exactly as the pipeline calls them (numpy in, numpy out, inference mode):
``NetworkFirstStage(thermal, visible_y, prior)`` and ``DiffusionRefiner(thermal, visible_y,
prior, first)`` with K = 1, 2, 4 steps (each also with ``backend: onnx``, the networks run
by onnxruntime), on a RoadScene TRAIN pair resized to the size (synthetic
frames without the data), with the shipped weights (``models/*.pt``; freshly initialised ones if
absent, marked "untrained"). Median and p90 over ``--frames`` calls after 10 warm-up calls.
p10 is shown as well: on a shared machine the fast calls are the ones that ran uncontended.
Prints a table, writes ``results/fusion_<device>.json`` and ``.md`` with the machine and its load.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import tempfile

from harness import timed as harness_timed, write_results  # benchmarks/harness.py
from machine import describe  # benchmarks/machine.py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def machine() -> dict:
    import torch
    return dict(describe(('torch', 'onnxruntime')), threads=torch.get_num_threads())


def frames(size):
    import cv2
    w, h = size
    try:
        from sgdfuse_ros.eval.datasets import dataset_pairs, default_data_dir, read_pair
        from sgdfuse_ros.pipeline.images import split_luma
        pair = dataset_pairs(default_data_dir(beside_checkout=True), 'train')[0]
        ir, vis = read_pair(pair)
        ir = cv2.resize(ir, (w, h)).astype(np.float32) / 255.0
        vis_y, _ = split_luma(cv2.resize(vis, (w, h)))
        return ir, vis_y, f'RoadScene train pair {pair.name} resized'
    except Exception:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:h, 0:w]
        ir = (0.3 + 0.1 * rng.random((h, w)) + 0.5 * ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < 900))
        vis = 0.5 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
        return ir.astype(np.float32), vis.astype(np.float32), 'synthetic'


def timed(fn, n, warmup=10):
    """Median, p90 and p10 ms of ``n`` calls after ``warmup`` untimed ones."""
    return harness_timed(fn, n, warmup, ('median', 'p90', 'p10'))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--size', default='640x512')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--out', default=str(HERE / 'results'))
    args = parser.parse_args(argv)
    from sgdfuse_ros.config import models_dir
    from sgdfuse_ros.fusion import network, refiner
    from sgdfuse_ros.fusion.backbone import count_parameters
    from sgdfuse_ros.fusion.weights import save_weights
    from sgdfuse_ros.pipeline import stages
    from sgdfuse_ros.prior.thermal import ThermalPrior
    import torch

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split('x'))
    ir, vis, source = frames((w, h))
    prior = ThermalPrior()(ir, vis)
    scratch = Path(tempfile.mkdtemp())
    notes = {}
    paths = {}
    for kind, module, cls in (('first_stage', network, network.FirstStageNet),
                              ('refiner', refiner, refiner.RefinerNet)):
        path = models_dir() / f'{kind}.pt'
        notes[kind] = 'trained'
        if not path.is_file():
            path = save_weights(scratch / f'{kind}.pt', kind, module.DEFAULT_ARCH,
                                cls.from_arch(dict(module.DEFAULT_ARCH)))
            notes[kind] = 'untrained'
        paths[kind] = path
    first_stage = network.load_first_stage(paths['first_stage'], args.device)
    rows = []
    med, p90, p10 = timed(lambda: first_stage(ir, vis, prior), args.frames)
    rows.append({'stage': 'first stage', 'steps': '-', 'median_ms': med, 'p90_ms': p90,
                 'p10_ms': p10,
                 'budget_ms': 25.0, 'params': count_parameters(first_stage.model),
                 'weights': notes['first_stage']})
    try:
        from sgdfuse_ros.config import load_config
        onnx_stage = stages.build_first_stage(
            load_config(overrides={'backend': 'onnx', 'threads': args.threads,
                                   'first_stage.weights': str(paths['first_stage']),
                                   'device': args.device}), args.device)
        med, p90, p10 = timed(lambda: onnx_stage(ir, vis, prior), args.frames)
        rows.append({'stage': 'first stage (onnxruntime)', 'steps': '-', 'median_ms': med,
                     'p90_ms': p90, 'p10_ms': p10, 'budget_ms': 25.0,
                     'params': count_parameters(first_stage.model),
                     'weights': notes['first_stage']})
    except Exception as err:  # onnxruntime missing or failing: the torch rows still stand
        print(f'first stage (onnxruntime) skipped: {type(err).__name__}: {err}', file=sys.stderr)
    first = first_stage(ir, vis, prior)
    for k in (1, 2, 4):
        ref = refiner.load_refiner(paths['refiner'], k, 0, args.device)
        med, p90, p10 = timed(lambda: ref(ir, vis, prior, first), args.frames)
        rows.append({'stage': 'refiner', 'steps': k, 'median_ms': med, 'p90_ms': p90,
                     'p10_ms': p10,
                     'budget_ms': 100.0 if k == 2 else None,
                     'params': count_parameters(ref.model), 'weights': notes['refiner']})
    for k in (1, 2, 4):
        try:
            from sgdfuse_ros.config import load_config
            ref = stages.build_refiner(load_config(overrides={
                'backend': 'onnx', 'threads': args.threads, 'refiner.steps': k,
                'refiner.weights': str(paths['refiner']), 'device': args.device}), args.device)
            med, p90, p10 = timed(lambda: ref(ir, vis, prior, first), args.frames)
            rows.append({'stage': 'refiner (onnxruntime)', 'steps': k, 'median_ms': med,
                         'p90_ms': p90, 'p10_ms': p10,
                         'budget_ms': 100.0 if k == 2 else None,
                         'params': count_parameters(ref.model), 'weights': notes['refiner']})
        except Exception as err:
            print(f'refiner (onnxruntime) skipped: {type(err).__name__}: {err}', file=sys.stderr)
            break
    info = {'size': f'{w}x{h}', 'frames': args.frames, 'device': args.device,
            'input': source, 'machine': machine(), 'rows': rows}
    lines = [f'# Learned stages, {w}x{h}, {args.device}, {args.threads} threads',
             '', f"{info['machine']['cpu']}; load average "
             f"{info['machine']['load_average_1min_at_start']}; "
             f"{info['machine']['date']}; input: {source}", '',
             '| stage | K | median ms | p90 ms | p10 ms | budget ms (median) | params | weights |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        budget = '-' if r['budget_ms'] is None else (
            f"{r['budget_ms']:.0f} ({'ok' if r['median_ms'] <= r['budget_ms'] else 'OVER'})")
        lines.append(f"| {r['stage']} | {r['steps']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['p10_ms']:.1f} | "
                     f"{budget} | {r['params']:,} | {r['weights']} |")
    table = '\n'.join(lines) + '\n'
    print(table)
    write_results(Path(args.out) / f'fusion_{args.device}', info, table, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
