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
Issue #14, rule 3: a full disk costs one line, exit 2, and nothing already written.

The disk is a real one, a small tmpfs, which needs root and CAP_SYS_ADMIN; where mounting is
not allowed the tests skip, saying so (the injected-ENOSPC test of ``evaluate`` in
test_reliability_commands.py runs everywhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from test_reliability_signals import bag_counts, no_journal

CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
DROPS = ('unmatched', 'late', 'duplicate', 'overflow')
FULL = ('No space left on device', 'database or disk is full')


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp('disk_src')
    ir, vis = write_sample(root / 'pairs', n=4, size=(160, 120))
    bag = root / 'bag'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(bag), '--repeat',
                '10', '--quiet']) == 0
    return Path(ir), Path(vis), bag


def last_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err, err
    line = err.splitlines()[-1]
    assert line.startswith(f'sgdfuse {command}: error: cannot write '), line
    assert any(text in line for text in FULL), line
    return line


def test_replay_onto_a_full_disk_keeps_a_closed_bag_and_a_balanced_report(source, tmp_path,
                                                                          small_disk, capsys):
    disk = small_disk('900k')
    out, report_dir = disk / 'fused', tmp_path / 'report'
    assert cli(['replay', str(source[2]), '--out', str(out), '--report', str(report_dir),
                '--quiet', '--no-metrics', *CLASSICAL]) == 2
    line = last_line(capsys, 'replay')
    no_journal(out)
    counts = bag_counts(out)  # readable, metadata written, counts agree
    report = json.loads((report_dir / 'report.json').read_text())
    pairs = report['pairs']
    assert 1 <= counts['/fused/image'] == pairs['fused'] < 40
    assert f"holds the {pairs['fused']} pairs fused" in line and 'closed' in line
    assert any(text in report['write_error'] for text in FULL)
    assert pairs['matched'] == pairs['fused'] + pairs['failed']
    assert {f['kind'] for f in report['failures']} <= {'not_written'}
    for role in ('thermal', 'rgb'):
        row = report['messages'][role]
        assert row['read'] == row['matched'] + sum(row[d] for d in DROPS) + \
            sum(row['rejected'].values())


def test_make_bag_onto_a_full_disk_keeps_the_frames_written(source, small_disk, capsys):
    disk = small_disk('700k')
    ir, vis, _ = source
    out = disk / 'bag'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--repeat',
                '20', '--quiet']) == 2
    line = last_line(capsys, 'make-bag')
    no_journal(out)
    counts = bag_counts(out)
    frames = counts['/rgb/image_raw']
    assert 1 <= frames < 80 and set(counts.values()) == {frames}
    assert f'holds {frames} frames' in line


def test_evaluate_onto_a_full_disk_exits_2_and_keeps_whole_images(source, small_disk, capsys):
    disk = small_disk('400k')
    ir, vis, _ = source
    many_ir, many_vis = disk.parent / 'many_ir', disk.parent / 'many_vis'
    for target, folder in ((many_ir, ir), (many_vis, vis)):
        target.mkdir()
        for i in range(40):
            (target / f'p{i:02d}.png').write_bytes((folder / f'sample_00{i % 4}.png')
                                                   .read_bytes())
    out = disk / 'out'
    assert cli(['evaluate', '--ir', str(many_ir), '--vis', str(many_vis), '--out', str(out),
                '--quiet', *CLASSICAL]) == 2
    line = last_line(capsys, 'evaluate')
    assert 'pairs fused' in line
    fused = list((out / 'fused').iterdir())
    assert fused and all(p.suffix == '.png' for p in fused)  # no half-written .tmp left
    assert all(cv2.imread(str(p)) is not None for p in fused)
