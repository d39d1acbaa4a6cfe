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
Cost of the published warm targets (``semantic/targets``, ``semantic/detections``) per frame.

    python benchmarks/bench_targets.py --data ../shared/data/roadscene --size 640x512

The node runs this selection (and the tracker) only while something subscribes to the targets;
this is what a subscriber costs. Thermal frames of the data set, resized to ``--size``, each
selected ``--frames`` times in turn after a warm-up. Prints a table, writes
``results/targets_cpu.json`` and ``.md`` with the machine and its load.
"""

import argparse
import glob
import os
from pathlib import Path
from types import SimpleNamespace

import cv2
from harness import command, timed, write_results  # benchmarks/harness.py
from machine import describe  # benchmarks/machine.py
import numpy as np
from sgdfuse_ros.pipeline.fusion_pipeline import SemanticOutputs

RESULTS = Path(__file__).resolve().parent / 'results'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='a folder with ir/')
    parser.add_argument('--size', default='640x512', help='WxH the thermal frames are resized to')
    parser.add_argument('--images', type=int, default=10, help='thermal frames used')
    parser.add_argument('--frames', type=int, default=60, help='timed selections')
    parser.add_argument('--out', type=Path, default=RESULTS / 'targets_cpu')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split('x'))
    files = sorted(glob.glob(str(args.data / 'ir' / '*')))[:args.images]
    if not files:
        raise SystemExit(f'bench_targets: no images in {args.data / "ir"}')
    frames = [cv2.resize(cv2.imread(f, cv2.IMREAD_GRAYSCALE), (width, height))
              .astype(np.float32) / 255.0 for f in files]
    semantic = SemanticOutputs()
    prior = SimpleNamespace(source='thermal')
    results = [SimpleNamespace(thermal=f, prior=prior, fused_y=f) for f in frames]
    state = {'i': 0}

    def one():
        semantic(results[state['i'] % len(results)])
        state['i'] += 1

    load = os.getloadavg()[0]
    median, p90 = timed(one, args.frames, warmup=len(results), digits=2)
    report = {'command': command(), 'machine': describe(('opencv',)),
              'load_average_1min_at_start': load, 'size': [width, height],
              'images': len(files), 'frames': args.frames,
              'targets_ms': {'median': median, 'p90': p90}}
    markdown = '\n'.join([
        '# Warm-target selection and tracking per frame (CPU)', '',
        f"`{report['command']}`", '',
        f'{len(files)} thermal frames of {args.data.name} at {width}x{height}; load average '
        f'{load:.2f} at the start.', '',
        '| size | frames | median ms | p90 ms |', '|---|---:|---:|---:|',
        f'| {width}x{height} | {args.frames} | {median} | {p90} |', ''])
    write_results(args.out, report, markdown, show=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
