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
Peak memory of one frame of N megapixels through the node with its default configuration.

The node's logic (:class:`~sgdfuse_ros.node.core.FusionNodeCore` over the in-memory transport,
CDR round trip per message, as the rclpy node runs it) with the shipped config and nothing
else set: thermal prior, learned first stage, refiner K=2, output at the visible size. One
process per size (so one frame's peak cannot hide another's); each sends one pair (thermal
mono16 14-bit, RGB bgr8, both WxH) and records the resident set before the pair (after
configure and activate, which warm the pipeline) and its peak (``VmHWM``) after it:

    nice -n 10 .venv/bin/python benchmarks/bench_frame_memory.py \
        [--sizes 640x512,1280x720,1920x1080,2560x1600,3840x2160] [--as-limit-gib 8]

Every child runs under an address-space limit (``--as-limit-gib``, RLIMIT_AS). Prints a table
(MiB) and writes ``benchmarks/results/frame_memory.json`` / ``.md``; the slope (MiB per
megapixel, least squares over the sizes) is what ``limits.max_input_pixels`` is chosen from
(docs/reliability.md, "Memory per frame").
"""

import argparse
import json
from pathlib import Path
import resource
import subprocess
import sys

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import write_results  # noqa: E402
from machine import describe  # noqa: E402

CHILD = r"""
import json, sys
import numpy as np


def status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0


w, h = int(sys.argv[1]), int(sys.argv[2])
from sgdfuse_ros.config import load_config
from sgdfuse_ros import messages
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.transport.memory import MemoryTransport

config = load_config(overrides={'limits.max_input_pixels': 1 << 30})
t = MemoryTransport('/mem', 'fusion_node', roundtrip=True)
core = FusionNodeCore(t, config, name='/mem/fusion_node')
core.configure()
core.activate()
yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
thermal = (7000 + 900 * (np.sin(xx / 37.0) + np.cos(yy / 23.0))).astype(np.uint16)
visible = np.dstack([(xx * 7 % 256), (yy * 5 % 256), ((xx + yy) % 256)]).astype(np.uint8)
del xx, yy
base = status('VmRSS')
t.publish('thermal/image_raw', messages.image_msg(thermal, messages.make_header(10.0, 't')))
t.publish('rgb/image_raw', messages.image_msg(visible, messages.make_header(10.0, 'v'), 'bgr8'))
del thermal, visible
core.process_pending()
fused = len(t.sent('fused/image'))
print(json.dumps({'base_mib': base, 'peak_mib': status('VmHWM'), 'fused': fused,
                  'rejected': core.stats()['inputs']['thermal']['rejected']}))
"""


def parse_sizes(text):
    sizes = []
    for item in text.split(','):
        w, h = item.lower().split('x')
        sizes.append((int(w), int(h)))
    return sizes


def run_one(w: int, h: int, limit_gib: float) -> dict:
    limit = int(limit_gib * (1 << 30))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, '-c', CHILD, str(w), str(h)], capture_output=True,
                          text=True, preexec_fn=cap)
    row = {'width': w, 'height': h, 'megapixels': round(w * h / 1e6, 3)}
    if done.returncode != 0:
        row['error'] = (done.stderr.strip().splitlines() or ['exit %d' % done.returncode])[-1]
        return row
    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    row['frame_mib'] = round(row['peak_mib'] - row['base_mib'], 1)
    return row


def slope(rows):
    pts = [(r['megapixels'], r['peak_mib']) for r in rows if 'peak_mib' in r and r['fused']]
    if len(pts) < 2:
        return None, None
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return round(b, 1), round(my - b * mx, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='640x512,1280x720,1920x1080,2560x1600,3840x2160')
    parser.add_argument('--as-limit-gib', type=float, default=8.0)
    parser.add_argument('--out', default=str(HERE / 'results'))
    args = parser.parse_args()
    rows = []
    for w, h in parse_sizes(args.sizes):
        row = run_one(w, h, args.as_limit_gib)
        rows.append(row)
        print(json.dumps(row), flush=True)
    per_mp, intercept = slope(rows)
    report = {'machine': describe(), 'as_limit_gib': args.as_limit_gib, 'rows': rows,
              'mib_per_megapixel': per_mp, 'intercept_mib': intercept}
    lines = ['# Peak memory of one frame (node, default config)', '',
             f"{report['machine']['cpu']}, {report['machine']['date']}, RLIMIT_AS "
             f'{args.as_limit_gib} GiB per process', '',
             '| size | megapixels | RSS before the pair (MiB) | peak (MiB) | frame (MiB) '
             '| fused |',
             '|---|---|---|---|---|---|']
    for r in rows:
        if 'error' in r:
            lines.append(f"| {r['width']}x{r['height']} | {r['megapixels']} | | | | "
                         f"{r['error'][:80]} |")
        else:
            lines.append(f"| {r['width']}x{r['height']} | {r['megapixels']} | "
                         f"{r['base_mib']:.0f} | {r['peak_mib']:.0f} | {r['frame_mib']:.0f} | "
                         f"{r['fused']} |")
    lines += ['', f'Least squares: peak = {intercept} MiB + {per_mp} MiB per megapixel.', '']
    write_results(Path(args.out) / 'frame_memory', report, '\n'.join(lines), show=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
