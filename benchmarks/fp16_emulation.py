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
How much float16 changes the fused image: the networks with float16 convolutions, on the CPU.

TensorRT's float16 engines (``tensorrt_fp16``) compute convolutions in float16. With no GPU
here, this runs the default pipeline (learned first stage + refiner, torch backend) on RoadScene
test pairs twice per pair, in float32 and under ``torch.autocast('cpu', torch.float16)``
(convolutions and matrix products in float16), with the same noise seed, and compares the fused
images. An emulation: a TensorRT engine fuses and orders operations its own way.

    python benchmarks/fp16_emulation.py --data DIR --pairs 10

Writes benchmarks/results/fp16_emulation.md (and .json).
"""

import argparse
import json
import os
from pathlib import Path
import time

import cv2
import numpy as np
from sgdfuse_ros.pipeline import FusionPipeline
import torch

RESULTS = Path(__file__).resolve().parent / 'results'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--data', type=Path, default=os.environ.get('SGDFUSE_DATA'))
    parser.add_argument('--pairs', type=int, default=10)
    args = parser.parse_args()
    names = json.loads((args.data / 'split.json').read_text())['test'][:args.pairs]
    rows = []
    with FusionPipeline.from_yaml(overrides={'backend': 'torch', 'device': 'cpu'}) as pipe:
        for name in names:
            ir = cv2.imread(str(args.data / 'ir' / name), cv2.IMREAD_GRAYSCALE)
            vis = cv2.imread(str(args.data / 'vis' / name), cv2.IMREAD_COLOR)
            torch.manual_seed(0)
            full = pipe.process(ir, vis).fused_bgr.astype(np.float32)
            torch.manual_seed(0)
            with torch.autocast('cpu', dtype=torch.float16):
                half = pipe.process(ir, vis).fused_bgr.astype(np.float32)
            diff = np.abs(full - half)
            mse = float((diff ** 2).mean())
            rows.append({'pair': name, 'mean_abs': float(diff.mean()),
                         'p999_abs': float(np.percentile(diff, 99.9)),
                         'max_abs': float(diff.max()),
                         'psnr_db': float(10 * np.log10(255 ** 2 / max(mse, 1e-12)))})
            print(json.dumps(rows[-1]), flush=True)
    summary = {'pairs': len(rows), 'torch': torch.__version__,
               'mean_abs': float(np.mean([r['mean_abs'] for r in rows])),
               'p999_abs_max': max(r['p999_abs'] for r in rows),
               'max_abs_max': max(r['max_abs'] for r in rows),
               'psnr_db_min': min(r['psnr_db'] for r in rows),
               'when': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    (RESULTS / 'fp16_emulation.json').write_text(json.dumps({'summary': summary, 'pairs': rows},
                                                            indent=1) + '\n')
    lines = ['# Float16 emulation on the CPU (fused image, float16 vs float32)', '',
             f"`python benchmarks/fp16_emulation.py --pairs {args.pairs}`, {summary['when']}, "
             f"torch {summary['torch']}, RoadScene test pairs, default pipeline (torch "
             'backend), differences in grey levels of the 8-bit fused BGR image.', '',
             '| pair | mean abs | 99.9th percentile | max | PSNR (dB) |',
             '|---|---:|---:|---:|---:|']
    lines += [f"| {r['pair']} | {r['mean_abs']:.3f} | {r['p999_abs']:.0f} | {r['max_abs']:.0f} | "
              f"{r['psnr_db']:.1f} |" for r in rows]
    lines += ['', f"All {summary['pairs']} pairs: mean {summary['mean_abs']:.3f}, 99.9th "
              f"percentile at most {summary['p999_abs_max']:.0f}, max "
              f"{summary['max_abs_max']:.0f}, PSNR at least {summary['psnr_db_min']:.1f} dB.", '']
    (RESULTS / 'fp16_emulation.md').write_text('\n'.join(lines))
    print(lines[-2])


if __name__ == '__main__':
    main()
