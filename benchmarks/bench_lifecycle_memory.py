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
Resident memory of the node over its lifecycle (configure, activate, frames, deactivate, cleanup).

The node's logic (:class:`~sgdfuse_ros.node.core.FusionNodeCore`, as the rclpy node runs it)
over the in-memory transport, one process per backend, on the CPU:

    nice -n 10 .venv/bin/python benchmarks/bench_lifecycle_memory.py [--frames 10] [--size 640x512]

Prints a table (MiB resident, from /proc/self/status) and writes
``benchmarks/results/lifecycle_memory.json``. ``import torch`` is measured on its own: the
libraries stay mapped after deactivate (a Python process cannot unload them).
"""

import argparse
import json
import os
from pathlib import Path
import platform
import subprocess
import sys

RESULTS = Path(__file__).resolve().parent / 'results'

CHILD = r"""
import json, sys
import numpy as np
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros import messages
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.transport.memory import MemoryTransport


def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0


backend, frames, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = {'start': rss()}
if backend == 'import-torch':
    import torch  # noqa: F401
    import sgdfuse_ros.pipeline.fusion_pipeline  # noqa: F401
    out['imported'] = rss()
    print(json.dumps(out))
    sys.exit(0)
t = MemoryTransport('/', 'fusion_node')
core = FusionNodeCore(t, load_config(overrides={'device': 'cpu', 'backend': backend}),
                      threaded=False)
core.configure()
out['configured'] = rss()
core.activate()
out['activated'] = rss()
ir, vis, _ = make_pair(1, (w, h))
thermal = (3000 + 40 * ir.astype(np.uint16)).astype(np.uint16)
for i in range(frames):
    s = 100 + i / 10
    t.publish(messages.INPUT_TOPICS['thermal'],
              messages.image_msg(thermal, messages.make_header(s + 0.002, 'ir'), 'mono16'))
    t.publish(messages.INPUT_TOPICS['visible'],
              messages.image_msg(vis, messages.make_header(s, 'rgb')))
    core.process_pending()
out['fused'] = len(t.sent(messages.FUSED_TOPIC))
out['active_after_frames'] = rss()
core.deactivate()
out['deactivated'] = rss()
core.cleanup()
out['cleaned_up'] = rss()
core.configure()
core.activate()
out['reactivated'] = rss()
core.shutdown()
print(json.dumps(out))
"""

STEPS = ('start', 'imported', 'configured', 'activated', 'active_after_frames', 'deactivated',
         'cleaned_up', 'reactivated')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=10)
    parser.add_argument('--size', default='640x512')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split('x'))
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    rows = {}
    for backend in ('import-torch', 'torch', 'onnx'):
        done = subprocess.run([sys.executable, '-c', CHILD, backend, str(args.frames), str(w),
                               str(h)], env=env, capture_output=True, text=True, check=True)
        rows[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f'resident memory (MiB), {args.frames} frames of {w}x{h}, CPU')
    print(f"{'step':22s}" + ''.join(f'{b:>14s}' for b in rows))
    for step in STEPS:
        cells = [rows[b].get(step) for b in rows]
        if any(c is not None for c in cells):
            text = [f'{c:14.0f}' if isinstance(c, float) else ' ' * 14 for c in cells]
            print(f'{step:22s}' + ''.join(text))
    result = {'frames': args.frames, 'size': [w, h], 'rss_mib': rows,
              'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(),
                          'python': platform.python_version(),
                          'load_average_at_end': list(os.getloadavg())}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / 'lifecycle_memory.json'
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
