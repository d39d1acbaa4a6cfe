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
Resident memory stays flat while frames stream through the pipeline.

A short version of ``benchmarks/bench_pipeline.py --memory-frames 1000``.
"""

from pathlib import Path

import numpy as np
import pytest

from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline

STATUS = Path('/proc/self/status')
pytestmark = pytest.mark.skipif(not STATUS.is_file(), reason='needs Linux /proc/self/status')


def rss_mib() -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    raise AssertionError('no VmRSS in /proc/self/status')


def stream(pipeline, pairs, frames, on_frame=None):
    for i in range(frames):
        thermal, visible = pairs[i % len(pairs)]
        result = pipeline.process(thermal, visible, 'mono16', 'bgr8')
        if on_frame is not None:
            on_frame(i, result)


@pytest.fixture(scope='module')
def pairs():
    out = []
    for seed in range(3):
        ir, vis, _ = make_pair(seed, (320, 256))
        out.append(((3000 + ir.astype(np.uint16) * 40), vis))  # 14-bit thermal: AGC runs
    return out


def test_rss_flat_over_150_frames(pairs):
    pipeline = FusionPipeline(load_config(overrides={
        'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}))
    stream(pipeline, pairs, 30)                      # warm-up: caches, allocator arenas
    base = rss_mib()
    peak = [base]
    stream(pipeline, pairs, 120, lambda i, r: peak.append(rss_mib()) if i % 10 == 9 else None)
    growth = (max(peak) - base) / base
    assert growth < 0.05, f'RSS grew {growth:.1%} ({base:.1f} -> {max(peak):.1f} MiB)'
    assert max(peak) - base < 16.0, f'RSS grew {max(peak) - base:.1f} MiB over 120 frames'


def test_the_check_sees_a_leak(pairs):
    """The same measurement flags a pipeline that keeps every result (sanity of the test)."""
    pipeline = FusionPipeline(load_config(overrides={
        'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}))
    kept = []
    stream(pipeline, pairs, 10, lambda i, r: kept.append(r))
    base = rss_mib()
    stream(pipeline, pairs, 60, lambda i, r: kept.append(r))
    assert rss_mib() - base > 16.0  # ~1.3 MiB per kept 320x256 result
