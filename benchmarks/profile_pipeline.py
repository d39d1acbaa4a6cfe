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
Where a frame's time goes: cProfile of the pipeline's hot path at one frame size.

    python benchmarks/profile_pipeline.py [--size 640x512] [--frames 100] [--config classical]
                                          [--top 25] [--untrained]

Feeds synthetic mono16 (14-bit) thermal + bgr8 visible frames through ``FusionPipeline.process``
(the same frames as ``bench_pipeline.py``), prints the per-stage medians and the functions with
the most time of their own (``tottime``). Uses only the standard library's profiler.
"""

from __future__ import annotations

import argparse
import cProfile
import io
from pathlib import Path
import pstats
import sys
import tempfile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_pipeline as bench  # noqa: E402
from sgdfuse_ros.messages import deserialize, IMAGE, image_from_msg  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--size', default='640x512')
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--config', default='classical', choices=list(bench.CONFIGS))
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--untrained', action='store_true',
                        help='untrained stand-in weights for learned stages without weights')
    args = parser.parse_args(argv)
    size = bench.parse_sizes(args.size)[0]
    scratch = tempfile.TemporaryDirectory(prefix='sgdfuse_prof_')
    if args.untrained:
        for param, module in (('first_stage.weights', 'sgdfuse_ros.fusion.network'),
                              ('refiner.weights', 'sgdfuse_ros.fusion.refiner')):
            path, _ = bench.untrained_weights(module, Path(scratch.name))
            if path is not None:
                bench.UNTRAINED[param] = str(path)
    pipeline, why = bench.build(args.config, 'torch', 'cpu', 0)
    if pipeline is None:
        print(f'{args.config}: not available ({why})')
        return 1
    frames = [tuple(image_from_msg(deserialize(b, IMAGE)) for b in pair)
              for pair in bench.input_messages(size)]
    for i in range(5):
        (t, te), (v, ve) = frames[i % len(frames)]
        pipeline.process(t, v, te, ve)
    timings = []
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(args.frames):
        (t, te), (v, ve) = frames[i % len(frames)]
        timings.append(pipeline.process(t, v, te, ve).timings)
    profiler.disable()
    pipeline.close()
    print(f'{args.config} at {size[0]}x{size[1]}, {args.frames} frames under cProfile '
          '(profiling adds overhead per Python call)')
    print('stage         median ms   p90 ms')
    from sgdfuse_ros.eval.scoring import percentile_summary
    for key in timings[0]:
        summary = percentile_summary([t[key] for t in timings], ('median', 'p90'))
        print(f"{key:<12} {summary['median']:9.2f} {summary['p90']:8.2f}")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats('tottime').print_stats(args.top)
    lines = text.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if 'ncalls' in line), 0)
    print('\n'.join(line.replace(str(HERE.parent) + '/', '') for line in lines[start:]))
    scratch.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
