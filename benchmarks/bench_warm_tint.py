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
Cost of the warm tint (``colour.warm_tint``) per frame, on one CPU thread.

    python benchmarks/bench_warm_tint.py --data ../shared/data/roadscene --size 640x512

Pairs of the data set resized to ``--size``: the tint of each frame's visible chroma by its
thermal image (the pipeline's ``colour`` stage does this after fading the chroma), timed
``--frames`` times in turn after a warm-up. Prints a table, writes ``results/warm_tint_cpu.json``
and ``.md`` with the machine and its load.
"""

import argparse
import glob
import os
from pathlib import Path

import cv2
from harness import command, timed, write_results  # benchmarks/harness.py
from machine import describe  # benchmarks/machine.py
import numpy as np
from sgdfuse_ros.config import load_config
from sgdfuse_ros.pipeline.images import split_luma
from sgdfuse_ros.pipeline.warm_tint import WarmTint

RESULTS = Path(__file__).resolve().parent / 'results'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', type=Path, required=True, help='a folder with ir/ and vis/')
    parser.add_argument('--sizes', nargs='+', default=['640x512', '1280x1024'],
                        help='WxH the frames are resized to')
    parser.add_argument('--images', type=int, default=10, help='pairs used')
    parser.add_argument('--frames', type=int, default=60, help='timed frames per size')
    parser.add_argument('--out', type=Path, default=RESULTS / 'warm_tint_cpu')
    args = parser.parse_args()
    cv2.setNumThreads(1)
    files = sorted(glob.glob(str(args.data / 'ir' / '*')))[:args.images]
    if not files:
        raise SystemExit(f'bench_warm_tint: no images in {args.data / "ir"}')
    tint = WarmTint.from_config(load_config())
    load = os.getloadavg()[0]
    rows = {}
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split('x'))
        frames = []
        for f in files:
            ir = cv2.resize(cv2.imread(f, cv2.IMREAD_GRAYSCALE), (width, height))
            vis = cv2.resize(cv2.imread(str(args.data / 'vis' / Path(f).name)), (width, height))
            y, chroma = split_luma(vis)
            frames.append((chroma, ir.astype(np.float32) / 255.0, y))
        state = {'i': 0}

        def one():
            tint(*frames[state['i'] % len(frames)])
            state['i'] += 1

        median, p90 = timed(one, args.frames, warmup=len(frames), digits=2)
        rows[size] = {'median': median, 'p90': p90}
    report = {'command': command(), 'machine': describe(('opencv',)),
              'load_average_1min_at_start': load, 'images': len(files), 'frames': args.frames,
              'strength': tint.strength, 'sigma': tint.sigma, 'tint_ms': rows}
    markdown = '\n'.join([
        '# Warm tint per frame (CPU, one thread)', '',
        f"`{report['command']}`", '',
        f'{len(files)} pairs of {args.data.name}; `colour.warm_tint` {tint.strength:g}, '
        f'`colour.warm_tint_sigma` {tint.sigma:g}; load average {load:.2f} at the start.', '',
        '| size | frames | median ms | p90 ms |', '|---|---:|---:|---:|',
        *[f'| {size} | {args.frames} | {r["median"]} | {r["p90"]} |' for size, r in rows.items()],
        ''])
    write_results(args.out, report, markdown, show=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
