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
A shortened soak over Cyclone DDS.

A short version of ``benchmarks/bench_soak.py``: 10 s at 30 Hz of small frames (thermal 160x128
mono16 + RGB 320x180 bgr8 with a thermal->RGB homography, a broken thermal frame every 30), node,
camera and consumer in separate processes. The node must exit cleanly with no traceback, its books
must balance, every rejection must be a frame the camera broke, and its memory must grow by less
than 5 % after a 4 s warm-up. The full benchmark (60 s, 640x512 + 1280x720) writes
``benchmarks/results/soak_dds.json``.
"""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

pytest.importorskip('cyclonedds')

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path('/proc/self/status').is_file(),
                                reason="needs Linux /proc for the node's memory")


@pytest.fixture(scope='module')
def soak(tmp_path_factory):
    out = tmp_path_factory.mktemp('soak')
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_soak.py'), '--seconds', '10',
               '--thermal-size', '160x128', '--rgb-size', '320x180', '--bad-every', '30',
               '--warmup', '4', '--out', str(out), '--name', 'soak_short']
    scratch = out / 'tmp'   # the benchmark's temporary files go here
    scratch.mkdir()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TMPDIR=str(scratch)))
    path = out / 'soak_short.json'
    assert path.is_file(), done.stdout + done.stderr
    return done, json.loads(path.read_text()), sorted(p.name for p in scratch.iterdir())


def test_the_node_survives_with_balanced_books(soak):
    done, result, _ = soak
    assert result['checks']['node_exit_clean'] and result['checks']['no_traceback'], \
        result['node_output_tail']
    assert result['node']['accounting_errors'] == []
    for source in ('thermal', 'rgb'):
        assert result['node']['pending_at_exit'][source] == 0
        assert result['node']['received'][source] + \
            result['node']['lost_in_transport'][source] == result['camera']['frames_sent']


def test_frames_are_delivered_and_broken_ones_rejected(soak):
    _, result, _ = soak
    assert result['delivered']['fused'] > 0.3 * result['camera']['frames_sent']
    rejected = result['node']['rejected']
    assert rejected['rgb'] == {}
    broken = result['camera']['broken_on_purpose']
    assert 1 <= rejected['thermal'].get('encoding', 0) <= broken['encoding']
    assert 1 <= rejected['thermal'].get('decode', 0) <= broken['decode']
    assert result['latency_ms']['stamp_to_received']['p50'] is not None


def test_memory_stays_flat_after_warm_up(soak):
    _, result, _ = soak
    memory = result['memory']
    assert memory['samples_after_warmup'] >= 3
    assert memory['growth_pct'] < 5.0, result['rss_samples']


def test_the_benchmark_passes_and_says_so(soak):
    done, result, _ = soak
    assert result['passed'] and done.returncode == 0, done.stdout[-2000:]
    assert '| result ' in done.stdout and 'PASSED' in done.stdout


def test_leaves_no_temporary_files(soak):
    """Its own scratch folder is removed (the ONNX scratch folder is kept on purpose, reused)."""
    assert [name for name in soak[2] if name.startswith('bench_soak_')] == []
