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
torch vs ONNX Runtime for the learned first stage, per intra-op thread count.

    python benchmarks/bench_backends.py [--size 640x512] [--frames 20] [--threads 1,2]

Builds the first-stage network (trained weights if ``models/first_stage.pt`` exists, else freshly
initialised: the cost does not depend on the weights), exports it with
:func:`sgdfuse_ros.onnx.export.export_module` and times the bare network (no pipeline) in torch
(``torch.set_num_threads``) and in :class:`sgdfuse_ros.onnx.runtime.OnnxModule` (intra-op threads,
spinning off, reused output buffers), median and p90 of ``--frames`` calls after 3 warm-up
calls. Checks that both agree (max abs difference). Writes ``results/backends_cpu.json`` and
``.md``.

The export is verified at multiples of 8 only: the current network pads to a multiple of 8 with a
Python branch, which tracing freezes (see :func:`export_module`); the pipeline must pad outside
the ONNX graph until that changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_pipeline as bench  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402


def first_stage_module(scratch: Path):
    """(torch module, note) - trained weights where they exist, else untrained."""
    from sgdfuse_ros.config import load_config, resolve_model_path
    from sgdfuse_ros.fusion import network
    from sgdfuse_ros.fusion.weights import load_weights

    path = resolve_model_path(load_config()['first_stage.weights'], 'first_stage.pt')
    note = 'trained'
    if not path.is_file():
        path, why = bench.untrained_weights('sgdfuse_ros.fusion.network', scratch)
        if path is None:
            raise SystemExit(f'first stage not available: {why}')
        note = 'untrained'
    model, _ = load_weights(path, network.KIND, network.FirstStageNet.from_arch)
    return model.eval(), note


def timed(fn, frames: int):
    """Median and p90 ms of ``frames`` calls after 3 untimed ones."""
    return harness.timed(fn, frames, warmup=3, digits=2)


def main(argv=None) -> int:
    from sgdfuse_ros.onnx.export import export_module
    from sgdfuse_ros.onnx.runtime import OnnxModule
    import torch

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--size', default='640x512')
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--threads', default='1,2')
    args = parser.parse_args(argv)
    w, h = bench.parse_sizes(args.size)[0]
    h8, w8 = h + (-h) % 8, w + (-w) % 8
    thread_counts = [int(t) for t in args.threads.split(',')]
    scratch = tempfile.TemporaryDirectory(prefix='sgdfuse_backends_')
    model, note = first_stage_module(Path(scratch.name))
    names = ['ir', 'vis', 'targets', 'boundaries']
    example = [torch.rand(1, 1, 256, 320) for _ in names]
    onnx_path = export_module(model, example, Path(scratch.name) / 'first_stage.onnx', names,
                              ['fused'], verify_sizes=[(256, 320), (h8, w8)])
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 1, h8, w8, generator=generator) for _ in names]
    arrays = [t.numpy() for t in inputs]
    machine = bench.machine_description()
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        runner = OnnxModule(onnx_path, device='cpu', threads=threads, reuse_outputs=True)
        with torch.inference_mode():
            reference = model(*inputs).numpy()
            torch_ms = timed(lambda: model(*inputs), args.frames)
        onnx_ms = timed(lambda: runner(*arrays), args.frames)
        diff = float(np.max(np.abs(runner(*arrays) - reference)))
        rows.append({'threads': threads, 'torch_ms': torch_ms, 'onnx_ms': onnx_ms,
                     'max_abs_difference': diff})
        print(f'{threads} thread(s): torch {torch_ms[0]:.1f} / {torch_ms[1]:.1f} ms, onnx '
              f'{onnx_ms[0]:.1f} / {onnx_ms[1]:.1f} ms (median / p90), max |diff| {diff:.1e}',
              flush=True)
    import os
    report = {'network': 'first stage', 'weights': note, 'size': [w8, h8], 'frames': args.frames,
              'machine': machine, 'load_average_1min_at_end': round(os.getloadavg()[0], 2),
              'rows': rows}
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    (bench.RESULTS / 'backends_cpu.json').write_text(json.dumps(report, indent=1) + '\n')
    lines = [f'# First-stage network: torch vs ONNX Runtime ({note} weights, {w8}x{h8})', '',
             f"{machine['date']}; CPU {machine['cpu']} ({machine['logical_cpus']} logical); torch "
             f"{machine['torch']}, onnxruntime {machine['onnxruntime']}; load average "
             f"{machine['load_average_1min_at_start']} at start, "
             f"{report['load_average_1min_at_end']} at end. Milliseconds per call of the bare "
             f'network, median / p90 of {args.frames}.', '',
             '| threads | torch | onnxruntime | max abs difference |', '|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['threads']} | {r['torch_ms'][0]:.1f} / {r['torch_ms'][1]:.1f} | "
                     f"{r['onnx_ms'][0]:.1f} / {r['onnx_ms'][1]:.1f} | "
                     f"{r['max_abs_difference']:.1e} |")
    (bench.RESULTS / 'backends_cpu.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    scratch.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
