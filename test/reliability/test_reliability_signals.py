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
Issue #14, rule 2: SIGINT and SIGTERM during replay, evaluate and make-bag keep what was done.

Each command runs as a subprocess (its own session, as a terminal's Ctrl-C or a service
manager's stop reaches it) and is interrupted mid-run, once it has written some frames. What
the user sees is asserted: exit status 130 / 143, one line, the output bag closed (readable by
rosbags, metadata written, no sqlite journal left, the MCAP summary written), the report marked
as interrupted with balanced books.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from waiting import as_at_a_terminal

ROOT = Path(__file__).resolve().parents[2]
CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
DROPS = ('unmatched', 'late', 'duplicate', 'overflow')


def start(*argv) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_at_a_terminal)


def interrupt_when(proc: subprocess.Popen, ready, sig) -> tuple:
    """Send ``sig`` once ``ready()`` is true; return (exit status, stdout, stderr)."""
    deadline = time.monotonic() + 120
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f'the command ended before it could be interrupted ({proc.returncode}): '
                        f'{err[-2000:]}')
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail('the command wrote nothing in 120 s')
        time.sleep(0.02)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('the command did not stop within 120 s of the signal')
    return proc.returncode, out, err


def the_line(err: str, command: str, sig) -> str:
    lines = err.strip().splitlines()
    assert 'Traceback' not in err, err
    assert len(lines) == 1, err
    name = 'SIGINT' if sig == signal.SIGINT else 'SIGTERM'
    assert lines[0].startswith(f'sgdfuse {command}: interrupted by {name}: '), lines[0]
    return lines[0]


def being_written(out: Path, name: str) -> Path:
    """Give the file a running command writes: in its scratch folder until it is swapped in."""
    found = sorted(out.parent.glob(f'.{out.name}.sgdfuse-new-*/{out.name}/{name}'))
    found += sorted(out.glob(f'.sgdfuse-*-new-*/{name}'))
    return found[0] if found else out / name


def committed_messages(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=0.1) as conn:
            return conn.execute('SELECT COUNT(*) FROM messages').fetchone()[0]
    except sqlite3.Error:
        return 0


def bag_counts(path: Path) -> dict:
    """{topic: messages read back}, checked against the metadata's own counts."""
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        declared = {c.topic: c.msgcount for c in reader.connections}
        read = dict.fromkeys(declared, 0)
        for conn, _, _ in reader.messages():
            read[conn.topic] += 1
    assert read == declared
    return read


def no_journal(path: Path) -> None:
    leftovers = [p.name for p in path.iterdir() if p.name.endswith(('-journal', '-wal', '-shm',
                                                                    '.tmp'))]
    assert not leftovers, leftovers


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_evaluate_interrupted_keeps_the_fused_pairs_and_a_balanced_report(pairs, tmp_path, sig):
    ir, vis, _, _ = pairs
    out = tmp_path / 'out'
    proc = start('evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                 *CLASSICAL)
    status, _, err = interrupt_when(
        proc, lambda: being_written(out, 'fused').is_dir()
        and len(list(being_written(out, 'fused').iterdir())) >= 3, sig)
    assert status == STATUS[sig]
    line = the_line(err, 'evaluate', sig)
    report = json.loads((out / 'metrics.json').read_text())
    assert report['interrupted'] == ('SIGINT' if sig == signal.SIGINT else 'SIGTERM')
    assert report['fused'] + report['failed'] + report['not_reached'] == report['pairs'] == 240
    assert report['fused'] >= 3 and report['not_reached'] > 0
    assert f"{report['fused']} of 240 pairs fused" in line
    fused = sorted((out / 'fused').iterdir())
    assert [p.stem for p in fused] == sorted(report['per_image'])  # no half-written file
    import cv2
    assert all(cv2.imread(str(p)) is not None for p in fused)
    assert '**Interrupted**' in (out / 'report.md').read_text()


@pytest.mark.parametrize('storage,sig', [('sqlite3', signal.SIGINT), ('mcap', signal.SIGTERM)])
def test_replay_interrupted_closes_the_bag_and_writes_the_report(long_bag, tmp_path, storage,
                                                                 sig):
    out = tmp_path / 'out'
    proc = start('replay', str(long_bag), '--out', str(out), '--storage', storage, '--quiet',
                 '--no-metrics', *CLASSICAL)
    if storage == 'sqlite3':
        def ready():
            return committed_messages(being_written(out, 'out.db3')) >= 12  # 3 pairs x 4 topics
    else:
        def ready():  # the first 1 MiB chunks are on disk
            mcap = being_written(out, 'out.mcap')
            return mcap.is_file() and mcap.stat().st_size > 600_000
    status, _, err = interrupt_when(proc, ready, sig)
    assert status == STATUS[sig]
    line = the_line(err, 'replay', sig)
    assert 'closed' in line and 'report:' in line
    assert (out / 'metadata.yaml').is_file()
    no_journal(out)
    counts = bag_counts(out)
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['interrupted'] == ('SIGINT' if sig == signal.SIGINT else 'SIGTERM')
    pairs = report['pairs']
    assert counts['/fused/image'] == pairs['fused'] >= 3
    for role in ('thermal', 'rgb'):
        row = report['messages'][role]
        assert row['read'] == row['matched'] + sum(row[d] for d in DROPS) + \
            sum(row['rejected'].values())
    assert pairs['matched'] == pairs['fused'] + pairs['failed']
    assert report['messages']['thermal']['read'] < 400  # stopped part-way
    assert 'Interrupted' in (tmp_path / 'out_report' / 'report.md').read_text()


def test_make_bag_interrupted_closes_a_readable_bag(pairs, tmp_path):
    _, _, ir, vis = pairs
    out = tmp_path / 'bag'
    proc = start('make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--repeat',
                 '150', '--quiet')
    status, _, err = interrupt_when(
        proc, lambda: committed_messages(being_written(out, 'bag.db3')) >= 8, signal.SIGTERM)
    assert status == 143
    line = the_line(err, 'make-bag', signal.SIGTERM)
    no_journal(out)
    counts = bag_counts(out)
    frames = counts['/thermal/image_raw']
    assert 2 <= frames < 600
    assert counts == {'/thermal/image_raw': frames, '/thermal/camera_info': frames,
                      '/rgb/image_raw': frames, '/rgb/camera_info': frames}
    assert f'after {frames} of 600 frames' in line and f'holds {frames} frames' in line
