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
``sgdfuse demo``: the main job, on data the repository generates itself.

1. writes a synthetic registered sample (:mod:`sgdfuse_ros.eval.synthetic_pairs`);
2. ``sgdfuse evaluate`` on it: fused images, metrics, report, contact sheet;
3. ``sgdfuse make-bag`` + ``sgdfuse replay`` on it: a ROS 2 bag in, a fused bag and a report out;
4. with ``--data`` (or $SGDFUSE_DATA): the same evaluation on RoadScene's test split.

``sgdfuse demo --bag`` only writes a short sample bag (about 5 s at 10 Hz, the node's input
topics) from RoadScene's test split (``--data`` / $SGDFUSE_DATA) or else the generated sample,
and prints how to play it into the node and look at the result.

It ends by printing where every output is. A stop signal ends the step in progress as that
command ends it (its line says what it kept) and the demo there (exit 130 / 143 / 129).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from . import main as cli_main
from .guard import Interrupted, signal_name, stop_request
from .outputs import check_apart, config_inputs
from .values import int_in
from ..errors import SgdfuseError
from ..eval.synthetic_pairs import write_sample


def add_arguments(parser) -> None:
    parser.add_argument('--out', type=Path, default=Path('outputs/demo'),
                        help='output folder (default: outputs/demo)')
    parser.add_argument('--pairs', type=int_in(1, 1000), default=6,
                        help='synthetic pairs to generate (1 .. 1000)')
    parser.add_argument('--data', type=Path, default=None,
                        help="also evaluate RoadScene's test split in this folder "
                             '(default: $SGDFUSE_DATA if set)')
    parser.add_argument('--bag', action='store_true',
                        help='only write a short sample bag (about 5 s at 10 Hz) to play into '
                             "the node, from --data's test split or the generated sample")
    parser.add_argument('--config', type=Path, default=None, help='config file')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _run(argv) -> None:
    stop = stop_request()
    if stop.requested:  # between two steps: the steps before are complete
        raise stop.interrupted(f'before its {argv[0]} step; the steps before it are complete')
    code = cli_main(argv)
    if code in (129, 130, 143):  # the step was stopped by a signal (its own line says how)
        signum = code - 128
        raise Interrupted(signum, f'interrupted by {signal_name(signum)} in its {argv[0]} step')
    if code != 0:
        raise SgdfuseError(f"step failed: sgdfuse {' '.join(map(str, argv))}")


BAG_RATE_HZ = 10.0
BAG_FRAMES = 50  # at least: ~5 s at 10 Hz (play it with --loop), pairs repeated as needed


def sample_bag(args, data, out: Path, quiet: list) -> int:
    """``--bag``: write OUT/sample_bag and print how to play it into the node."""
    if data is not None:
        split = json.loads((data / 'split.json').read_text())
        pairs = len(split.get('test', [])) if isinstance(split, dict) else 0
        if pairs == 0:
            raise SgdfuseError(f'--data {data}: split.json lists no test pairs')
        source = ['--data', str(data), '--subset', 'test']
        what = f'RoadScene test split ({pairs} pairs)'
    else:
        sample = out / 'sample'
        write_sample(sample, n=args.pairs, size=(640, 480))
        pairs = args.pairs
        source = ['--ir', str(sample / 'ir'), '--vis', str(sample / 'vis')]
        what = f'generated sample ({pairs} pairs)'
    repeat = -(-BAG_FRAMES // pairs)
    bag = out / 'sample_bag'
    _run(['make-bag', *source, '--out', str(bag), '--rate', f'{BAG_RATE_HZ:g}',
          '--repeat', str(repeat), '--overwrite', *quiet])
    seconds = pairs * repeat / BAG_RATE_HZ
    print(f'\nsample bag: {bag} ({pairs * repeat} frames, {seconds:.0f} s at '
          f'{BAG_RATE_HZ:g} Hz, from the {what})')
    print('play it into the node (three terminals, ROS 2 sourced):')
    print('  ros2 launch sgdfuse_ros fusion.launch.py use_sim_time:=true')
    print(f'  ros2 bag play {bag} --clock --loop')
    print('  ros2 run rqt_image_view rqt_image_view     (then pick /fused/image)')
    print(f'or without ROS: sgdfuse replay {bag} --out {out / "sample_bag_fused"}')
    return 0


def main(args) -> int:
    data = args.data or (Path(os.environ['SGDFUSE_DATA']) if os.environ.get('SGDFUSE_DATA')
                         else None)
    sources = [('--data', data / name) for name in ('ir', 'vis', 'split.json')] if data else []
    check_apart(config_inputs(args.config) + sources, [('--out', args.out)])
    out = args.out.resolve()
    # from here a signal stops the demo at the end of the step in progress
    stop_request().protect()
    out.mkdir(parents=True, exist_ok=True)
    config = ['--config', str(args.config)] if args.config else []
    quiet = ['--quiet'] if args.quiet else []
    if args.bag:
        return sample_bag(args, data, out, quiet)
    outputs = {}

    sample = out / 'sample'
    write_sample(sample, n=args.pairs, size=(640, 480))
    outputs['sample pairs (generated)'] = sample
    _run(['evaluate', '--ir', str(sample / 'ir'), '--vis', str(sample / 'vis'),
          '--out', str(out / 'evaluate_sample'), *config, *quiet])
    outputs['fused images (sample)'] = out / 'evaluate_sample' / 'fused'
    outputs['report (sample)'] = out / 'evaluate_sample' / 'report.md'
    outputs['contact sheet (sample)'] = out / 'evaluate_sample' / 'contact_sheet.png'

    if _available('sgdfuse_ros.cli.replay'):
        bag_in, bag_out = out / 'sample_bag', out / 'sample_bag_fused'
        _run(['make-bag', '--ir', str(sample / 'ir'), '--vis', str(sample / 'vis'),
              '--out', str(bag_in), '--overwrite', *quiet])
        _run(['replay', str(bag_in), '--out', str(bag_out), '--overwrite', *config, *quiet])
        outputs['input bag (sample)'] = bag_in
        outputs['fused bag (sample)'] = bag_out
        outputs['replay report (sample)'] = Path(str(bag_out) + '_report') / 'report.md'

    if data is not None:
        _run(['evaluate', '--data', str(data), '--subset', 'test',
              '--out', str(out / 'evaluate_roadscene_test'), *config, *quiet])
        outputs['fused images (RoadScene test)'] = out / 'evaluate_roadscene_test' / 'fused'
        outputs['report (RoadScene test)'] = out / 'evaluate_roadscene_test' / 'report.md'

    print('\nOutputs:')
    for what, path in outputs.items():
        print(f'  {what:32s} {path}')
    return 0
