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
The road one frame takes: which of the package's modules its handling runs code in.

    python benchmarks/frame_road.py live      # thermal callback -> fused publish (node)
    python benchmarks/frame_road.py replay    # a bag message read -> fused outputs written

Nothing is timed. One pair is fused with the default config (CPU) after a warm-up pair; the
second pair's handling is traced (``sys.setprofile``: every Python function call in this
thread) and the package modules whose code ran are printed in the order they were first
entered, with the count of modules, folders and folder crossings (consecutive calls whose
modules sit in different folders).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'sgdfuse_ros') + os.sep


class Road:
    """Record the package modules entered while active."""

    def __init__(self):
        self.order = []
        self.crossings = 0
        self._last = None

    def _profile(self, frame, event, arg):
        if event != 'call':
            return
        path = frame.f_code.co_filename
        if not path.startswith(PACKAGE):
            return
        module = path[len(PACKAGE):]
        if module not in self.order:
            self.order.append(module)
        folder = os.path.dirname(module) or '.'
        if self._last is not None and folder != self._last:
            self.crossings += 1
        self._last = folder

    def __enter__(self):
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)

    def report(self, what: str) -> None:
        folders = []
        for module in self.order:
            folder = os.path.dirname(module) or '.'
            if folder not in folders:
                folders.append(folder)
        print(f'{what}: {len(self.order)} modules in {len(folders)} folders, '
              f'{self.crossings} folder crossings')
        for module in self.order:
            print(f'  {module}')


def _pair(index: int):
    from sgdfuse_ros.eval.synthetic_pairs import make_pair
    ir, visible, _ = make_pair(index, (160, 128))
    return (7000 + 60 * ir.astype(np.uint16)).astype(np.uint16), visible


def live() -> Road:
    """One pair through the node over the in-memory transport (no worker thread)."""
    from sgdfuse_ros.config import load_config
    from sgdfuse_ros.node.core import FusionNodeCore
    from sgdfuse_ros.transport.memory import MemoryTransport
    from sgdfuse_ros import messages
    transport = MemoryTransport('/road', 'fusion_node', roundtrip=True)
    core = FusionNodeCore(transport, load_config(overrides={'device': 'cpu'}), threaded=False)
    core.configure()
    core.activate()
    road = Road()
    for index in range(2):
        thermal, visible = _pair(index)
        header = messages.make_header(messages.make_time(10.0 + index), 'cam')
        thermal_msg = messages.image_msg(thermal, header, 'mono16')
        visible_msg = messages.image_msg(visible, header, 'bgr8')
        if index == 0:
            core.on_thermal(thermal_msg)
            core.on_visible(visible_msg)
            core.process_pending()
            continue
        with road:
            core.on_thermal(thermal_msg)
            core.on_visible(visible_msg)
            core.process_pending()
    published = core.stats()['output']['published']
    core.shutdown()
    if published != 2:
        raise SystemExit(f'expected 2 published pairs, got {published}')
    return road


def replay() -> Road:
    """One bag of two pairs replayed; the second pair's messages are traced."""
    from sgdfuse_ros.cli import main
    from sgdfuse_ros.bag import replay as replay_module
    scratch = tempfile.TemporaryDirectory(prefix='frame_road_')  # removed at the end
    work = scratch.name
    from sgdfuse_ros.eval.synthetic_pairs import write_sample
    ir_dir, vis_dir = write_sample(os.path.join(work, 'pairs'), n=2, size=(160, 128))
    bag_in = os.path.join(work, 'in')
    if main(['make-bag', '--ir', str(ir_dir), '--vis', str(vis_dir), '--out', bag_in,
             '--quiet']) != 0:
        raise SystemExit('make-bag failed')
    road = Road()
    arrive = replay_module.Replay.arrive
    seen = []

    def traced(self, *args, **kwargs):
        seen.append(1)
        if len(seen) <= 2:  # the first pair: warm-up
            return arrive(self, *args, **kwargs)
        with road:
            return arrive(self, *args, **kwargs)

    replay_module.Replay.arrive = traced
    try:
        status = main(['replay', bag_in, '--out', os.path.join(work, 'out'),
                       '--set', 'device=cpu'])
    finally:
        replay_module.Replay.arrive = arrive
        scratch.cleanup()
    if status != 0 or len(seen) != 4:
        raise SystemExit(f'replay failed ({status}, {len(seen)} messages)')
    return road


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('path', choices=('live', 'replay'))
    args = parser.parse_args(argv)
    road = live() if args.path == 'live' else replay()
    road.report(f'{args.path} frame')
    return 0


if __name__ == '__main__':
    sys.exit(main())
