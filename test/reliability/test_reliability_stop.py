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
Issue #19, class 3: every long command stops cleanly on every stop signal, however sent.

SIGINT, SIGTERM and SIGHUP stop ``train`` and ``adapt`` at a step boundary with a checkpoint
that the next run resumes from (saying from which step, the log continued); a second or third
signal may hurry a command but never corrupts what it writes (the bag closed with its metadata,
the report written, the checkpoint whole); a signal while a command finishes is kept waiting
until the report is written; a full disk under training is one line, exit 2, no temporary file
left, the previous checkpoint intact.

Subprocess tests wait for an event the command writes (a committed frame, a log record of a
finished step) before they signal. In-process tests send the signal from inside the step under
test (``os.kill`` of this process runs the handler before the next Python line), which places
it exactly: during a frame, the bag's closing, the report's writing, the checkpoint's writing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import pty
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from sgdfuse_ros.cli import main as cli
from test_reliability_signals import bag_counts, being_written, committed_messages, no_journal, \
    start
import torch
from waiting import as_at_a_terminal

CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
NAMES = {signal.SIGINT: 'SIGINT', signal.SIGTERM: 'SIGTERM', signal.SIGHUP: 'SIGHUP'}
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
DROPS = ('unmatched', 'late', 'duplicate', 'overflow')
TINY_ARCH = json.dumps({'levels': 4, 'c1': 8, 'c2': 16, 'blocks': 1})


# --- helpers ----------------------------------------------------------------------------------

def wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f'the command ended before {what} ({proc.returncode}): {err[-2000:]}')
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f'no {what} in {timeout:.0f} s')
        time.sleep(0.01)


def finish(proc: subprocess.Popen) -> tuple:
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('the command did not stop within 180 s of the signals')
    return proc.returncode, out, err


def signal_times(proc: subprocess.Popen, sig, gaps=()) -> None:
    """Send ``sig``, then once more after each gap (seconds): a user pressing Ctrl-C again."""
    proc.send_signal(sig)
    for gap in gaps:
        time.sleep(gap)  # the spacing under test, not an ordering
        if proc.poll() is None:
            proc.send_signal(sig)


def last_line(err: str, command: str, sig) -> str:
    assert 'Traceback' not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f'sgdfuse {command}: interrupted by {NAMES[sig]}'), err[-2000:]
    return line


def only_line(err: str, command: str, sig) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return last_line(err, command, sig)


def log_steps(log: Path) -> list:
    if not log.is_file():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            steps.append(json.loads(line).get('step', 0))
        except ValueError:
            pass  # a line being written
    return steps


def checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location='cpu', weights_only=True)['step'])


def replay_books(report: dict) -> None:
    for role in ('thermal', 'rgb'):
        row = report['messages'][role]
        assert row['read'] == row['matched'] + sum(row[d] for d in DROPS) + \
            sum(row['rejected'].values())
    pairs = report['pairs']
    assert pairs['matched'] == pairs['fused'] + pairs['failed']


def kill_self(*signals):
    for sig in signals:
        os.kill(os.getpid(), sig)


# --- data -------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def short_bag(pairs, tmp_path_factory):
    bag = tmp_path_factory.mktemp('stop_bags') / 'short'
    assert cli(['make-bag', '--ir', str(pairs[2]), '--vis', str(pairs[3]), '--out', str(bag),
                '--repeat', '2', '--quiet']) == 0
    return bag


@pytest.fixture(scope='module')
def train_data(tmp_path_factory):
    """Make a RoadScene-layout folder of three small train pairs (the test pair is unreadable)."""
    root = tmp_path_factory.mktemp('stop_train') / 'data'
    (root / 'ir').mkdir(parents=True)
    (root / 'vis').mkdir()
    rng = np.random.default_rng(0)
    names = ['a', 'b', 'c']
    for i, name in enumerate(names):
        h, w = 64, 72
        yy, xx = np.mgrid[0:h, 0:w]
        ir = 60 + 20 * rng.random((h, w))
        ir[(yy - 30 - i) ** 2 + (xx - 40) ** 2 < 100] = 230
        vis = 128 + 80 * np.sin(xx / (4.0 + i)) * (yy > 20) + 10 * rng.random((h, w))
        cv2.imwrite(str(root / 'ir' / f'{name}.png'), np.clip(ir, 0, 255).astype(np.uint8))
        bgr = np.dstack([vis, vis * 0.8, vis * 0.6])
        cv2.imwrite(str(root / 'vis' / f'{name}.png'), np.clip(bgr, 0, 255).astype(np.uint8))
    (root / 'ir' / 't.png').write_text('test pair: must never be read')
    (root / 'vis' / 't.png').write_text('test pair: must never be read')
    (root / 'split.json').write_text(json.dumps({'train': names, 'test': ['t']}))
    return root


def train_args(data: Path, tmp: Path, steps: int, *extra) -> list:
    return ['train', 'first-stage', '--data', str(data), '--out', str(tmp / 'fs.pt'), '--work',
            str(tmp / 'work'), '--steps', str(steps), '--batch', '2', '--crop', '32',
            '--val-pairs', '0', '--threads', '1', '--arch', TINY_ARCH, *extra]


def adapt_args(bag: Path, out: Path, steps: int, *extra) -> list:
    return ['adapt', str(bag), '--out', str(out), '--stage', 'first-stage', '--steps', str(steps),
            '--val-frames', '0', '--batch', '2', '--crop', '32', '--threads', '1', '--quiet',
            *extra]


# --- train and adapt: a checkpoint at a step, and the rerun resumes from it -------------------

@pytest.mark.parametrize('sig', SIGNALS, ids=list(NAMES.values()))
def test_train_stops_at_a_step_with_a_checkpoint_and_the_rerun_resumes(train_data, tmp_path,
                                                                       capsys, sig):
    work = tmp_path / 'work'
    proc = start(*train_args(train_data, tmp_path, 100000))
    wait_for(proc, lambda: any(s >= 10 for s in log_steps(work / 'log.jsonl')),
             'a logged training step')
    signal_times(proc, sig)
    status, _, err = finish(proc)
    assert status == STATUS[sig], err[-2000:]
    line = last_line(err, 'train', sig)
    step = checkpoint_step(work / 'checkpoint.pt')
    assert step >= 10
    assert f'stopped at step {step} of 100000' in line and 'checkpoint' in line
    assert '--resume continues from step' in line
    assert max(log_steps(work / 'log.jsonl')) <= step
    assert not list(work.glob('*.tmp')) and not list(tmp_path.glob('*.tmp'))
    assert torch.load(tmp_path / 'fs.pt', weights_only=True)['info']['steps'] == step
    if sig != signal.SIGINT:
        return
    # the same command again: refused (it would silently start over), one line
    capsys.readouterr()
    assert cli(train_args(train_data, tmp_path, 100000)) == 2
    refused = capsys.readouterr().err.strip()
    assert len(refused.splitlines()) == 1 and 'Traceback' not in refused
    assert f'holds the checkpoint of an earlier run at step {step}' in refused
    assert '--resume' in refused
    # with --resume: says from which step, and the log goes on
    logged_before = log_steps(work / 'log.jsonl')
    assert cli(train_args(train_data, tmp_path, step + 12, '--resume')) == 0
    said = capsys.readouterr().err
    assert f'resuming from step {step} of {step + 12}' in said
    after = log_steps(work / 'log.jsonl')
    assert after[:len(logged_before)] == logged_before and max(after) == step + 12
    assert checkpoint_step(work / 'checkpoint.pt') == step + 12


def test_adapt_stops_on_sighup_with_a_checkpoint_and_the_same_command_resumes(
        short_bag, tmp_path, capsys):
    out = tmp_path / 'adapted'
    work = out / 'adapt_work' / 'first-stage'
    proc = start(*adapt_args(short_bag, out, 100000))
    wait_for(proc, lambda: any(s >= 10 for s in log_steps(work / 'log.jsonl')),
             'a logged adaptation step')
    signal_times(proc, signal.SIGHUP)
    status, _, err = finish(proc)
    assert status == 129, err[-2000:]
    line = only_line(err, 'adapt', signal.SIGHUP)
    step = checkpoint_step(work / 'checkpoint.pt')
    assert step >= 10 and f'first-stage stopped at step {step} of 100000' in line
    assert f'the same command continues from step {step}' in line
    assert not list(work.glob('*.tmp')) and not list(out.glob('*.tmp'))
    logged = log_steps(work / 'log.jsonl')
    # the same command (stopping again after 3 steps): resumes, says so, the log goes on
    assert cli(adapt_args(short_bag, out, 100000, '--stop-after', '3')) == 0
    said = capsys.readouterr().err
    assert f'resuming from step {step} of 100000' in said, said
    assert checkpoint_step(work / 'checkpoint.pt') == step + 3
    assert log_steps(work / 'log.jsonl')[:len(logged)] == logged


def test_train_three_signals_keep_a_whole_checkpoint(train_data, tmp_path):
    work = tmp_path / 'work'
    proc = start(*train_args(train_data, tmp_path, 100000))
    wait_for(proc, lambda: any(s >= 10 for s in log_steps(work / 'log.jsonl')),
             'a logged training step')
    signal_times(proc, signal.SIGINT, gaps=(0.02, 0.05))
    status, _, err = finish(proc)
    assert status == 130, err[-2000:]
    last_line(err, 'train', signal.SIGINT)
    step = checkpoint_step(work / 'checkpoint.pt')  # loads: whole
    assert step >= 10 and max(log_steps(work / 'log.jsonl')) <= step
    assert not list(work.glob('*.tmp'))


def test_train_signals_while_the_checkpoint_is_written_are_deferred(train_data, tmp_path,
                                                                    monkeypatch, capsys):
    from sgdfuse_ros.training import loop
    real = loop.save_atomically

    def save_under_fire(payload, path):
        kill_self(signal.SIGTERM, signal.SIGTERM, signal.SIGINT)
        real(payload, path)

    monkeypatch.setattr(loop, 'save_atomically', save_under_fire)
    assert cli(train_args(train_data, tmp_path, 5)) == 143
    err = capsys.readouterr().err
    line = last_line(err, 'train', signal.SIGTERM)
    assert 'as it was finishing' in line  # the 5 steps were done: the results are complete
    assert checkpoint_step(tmp_path / 'work' / 'checkpoint.pt') == 5
    assert torch.load(tmp_path / 'fs.pt', weights_only=True)['info']['steps'] == 5


def test_a_second_signal_abandons_the_training_step_in_progress(train_data, tmp_path,
                                                                monkeypatch, capsys):
    from sgdfuse_ros.training import tasks
    real = tasks.FirstStageTask.loss
    calls = []

    def loss(self, data):
        calls.append(1)
        if len(calls) == 4:  # in the 4th step: a Ctrl-C, then another
            kill_self(signal.SIGINT, signal.SIGINT)
        return real(self, data)

    monkeypatch.setattr(tasks.FirstStageTask, 'loss', loss)
    assert cli(train_args(train_data, tmp_path, 50)) == 130
    line = last_line(capsys.readouterr().err, 'train', signal.SIGINT)
    assert 'stopped at step 3 of 50' in line  # the 4th step was abandoned, undone
    assert checkpoint_step(tmp_path / 'work' / 'checkpoint.pt') == 3


def test_a_second_signal_abandons_a_validation_in_progress(train_data, tmp_path, monkeypatch,
                                                           capsys):
    from sgdfuse_ros.training import loop
    real = loop.validation_metrics
    calls = []

    def validation(fuse, samples):
        calls.append(1)
        if len(calls) == 3:  # step 5's validation (after the reference's and step 0's)
            kill_self(signal.SIGINT, signal.SIGINT)
        return real(fuse, samples)

    monkeypatch.setattr(loop, 'validation_metrics', validation)
    argv = train_args(train_data, tmp_path, 50)
    argv[argv.index('--val-pairs') + 1] = '3'  # one of the three pairs held out
    assert cli(argv + ['--val-every', '5']) == 130
    line = last_line(capsys.readouterr().err, 'train', signal.SIGINT)
    assert 'stopped at step 5 of 50' in line
    assert checkpoint_step(tmp_path / 'work' / 'checkpoint.pt') == 5
    records = [json.loads(x) for x in (tmp_path / 'work' / 'log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records if 'val' in r] == [0]  # step 5 was not scored
    assert len(calls) == 3  # and no final validation after the stop


# --- two Ctrl-C: the second may hurry, never corrupt ------------------------------------------

@pytest.mark.parametrize('gap', [0.02, 0.1], ids=['20ms', '100ms'])
def test_replay_two_ctrl_c_close_the_bag_and_write_the_report(long_bag, tmp_path, gap):
    out = tmp_path / 'out'
    proc = start('replay', str(long_bag), '--out', str(out), '--quiet', *CLASSICAL)
    wait_for(proc, lambda: committed_messages(being_written(out, 'out.db3')) >= 12,
             'a committed frame')
    signal_times(proc, signal.SIGINT, gaps=(gap,))
    status, _, err = finish(proc)
    assert status == 130, err[-2000:]
    line = only_line(err, 'replay', signal.SIGINT)
    assert 'closed' in line and 'report:' in line
    assert (out / 'metadata.yaml').is_file()
    no_journal(out)
    counts = bag_counts(out)
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['interrupted'] == 'SIGINT'
    replay_books(report)
    assert counts['/fused/image'] == report['pairs']['fused'] >= 3


def test_make_bag_two_ctrl_c_leave_a_bag_with_its_metadata(pairs, tmp_path):
    out = tmp_path / 'bag'
    proc = start('make-bag', '--ir', str(pairs[2]), '--vis', str(pairs[3]), '--out', str(out),
                 '--repeat', '150', '--quiet')
    wait_for(proc, lambda: committed_messages(being_written(out, 'bag.db3')) >= 8,
             'a committed frame')
    signal_times(proc, signal.SIGINT, gaps=(0.05,))
    status, _, err = finish(proc)
    assert status == 130, err[-2000:]
    line = only_line(err, 'make-bag', signal.SIGINT)
    assert (out / 'metadata.yaml').is_file()
    no_journal(out)
    counts = bag_counts(out)
    frames = counts['/thermal/image_raw']
    assert set(counts.values()) == {frames} and f'holds {frames} frames' in line


def test_evaluate_two_ctrl_c_keep_metrics_and_report(pairs, tmp_path):
    out = tmp_path / 'out'
    proc = start('evaluate', '--ir', str(pairs[0]), '--vis', str(pairs[1]), '--out', str(out),
                 '--quiet', *CLASSICAL)
    wait_for(proc, lambda: being_written(out, 'fused').is_dir()
             and len(list(being_written(out, 'fused').iterdir())) >= 3,
             'a fused pair')
    signal_times(proc, signal.SIGINT, gaps=(0.03,))
    status, _, err = finish(proc)
    assert status == 130, err[-2000:]
    only_line(err, 'evaluate', signal.SIGINT)
    report = json.loads((out / 'metrics.json').read_text())
    assert report['interrupted'] == 'SIGINT'
    assert report['fused'] + report['failed'] + report['not_reached'] == report['pairs'] == 240
    fused = sorted(p.stem for p in (out / 'fused').iterdir())
    assert fused == sorted(report['per_image'])  # no PNG without its metrics, none half-written
    assert '**Interrupted**' in (out / 'report.md').read_text()


def test_replay_second_signal_during_a_frame_is_counted_not_an_accounting_error(
        short_bag, tmp_path, monkeypatch, capsys):
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
    real = FusionPipeline.process
    calls = []

    def process(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            kill_self(signal.SIGINT, signal.SIGINT)  # Ctrl-C twice while pair 3 is fused
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FusionPipeline, 'process', process)
    out = tmp_path / 'out'
    assert cli(['replay', str(short_bag), '--out', str(out), '--quiet', '--no-metrics',
                *CLASSICAL]) == 130
    only_line(capsys.readouterr().err, 'replay', signal.SIGINT)
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    replay_books(report)
    assert report['pairs']['fused'] == 2
    assert [f['kind'] for f in report['failures']] == ['interrupted']
    assert bag_counts(out)['/fused/image'] == 2


def test_evaluate_second_signal_during_a_pair_leaves_it_not_reached(pairs, tmp_path,
                                                                    monkeypatch, capsys):
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
    real = FusionPipeline.process
    calls = []

    def process(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            kill_self(signal.SIGTERM, signal.SIGTERM)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FusionPipeline, 'process', process)
    out = tmp_path / 'out'
    assert cli(['evaluate', '--ir', str(pairs[2]), '--vis', str(pairs[3]), '--out', str(out),
                '--quiet', *CLASSICAL]) == 143
    only_line(capsys.readouterr().err, 'evaluate', signal.SIGTERM)
    report = json.loads((out / 'metrics.json').read_text())
    assert (report['fused'], report['failed'], report['not_reached']) == (2, 0, 2)
    assert sorted(p.stem for p in (out / 'fused').iterdir()) == sorted(report['per_image'])
    assert (out / 'report.md').is_file()


# --- signals while a command finishes, or before it starts -------------------------------------

def test_replay_signal_while_the_report_is_written_waits_for_the_report(short_bag, tmp_path,
                                                                        monkeypatch, capsys):
    from sgdfuse_ros.bag.report import ReplayReport
    real = ReplayReport.write

    def write(self, folder):
        kill_self(signal.SIGTERM, signal.SIGTERM)  # the bag is closed; the report is next
        return real(self, folder)

    monkeypatch.setattr(ReplayReport, 'write', write)
    out = tmp_path / 'out'
    assert cli(['replay', str(short_bag), '--out', str(out), '--quiet', *CLASSICAL]) == 143
    line = only_line(capsys.readouterr().err, 'replay', signal.SIGTERM)
    assert 'as it was finishing' in line
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    replay_books(report)
    assert report['pairs']['fused'] == 8 and (tmp_path / 'out_report' / 'report.md').is_file()


@pytest.mark.parametrize('command', ['replay', 'make-bag'])
def test_signals_while_the_bag_is_closed_keep_its_metadata(short_bag, pairs, tmp_path,
                                                           monkeypatch, capsys, command):
    from sgdfuse_ros.bag.writer import BagWriter
    real = BagWriter.close

    def close(self):
        kill_self(signal.SIGINT, signal.SIGHUP, signal.SIGINT)
        return real(self)

    monkeypatch.setattr(BagWriter, 'close', close)
    out = tmp_path / 'out'
    if command == 'replay':
        argv = ['replay', str(short_bag), '--out', str(out), '--quiet', *CLASSICAL]
    else:
        argv = ['make-bag', '--ir', str(pairs[2]), '--vis', str(pairs[3]), '--out', str(out),
                '--quiet']
    assert cli(argv) == 130
    line = only_line(capsys.readouterr().err, command, signal.SIGINT)
    assert 'as it was finishing' in line or 'after 4 of 4 frames' in line
    assert (out / 'metadata.yaml').is_file()
    no_journal(out)
    counts = bag_counts(out)
    assert set(counts.values()) == {8 if command == 'replay' else 4}


def test_replay_signal_while_the_pipeline_is_built_leaves_nothing(short_bag, tmp_path,
                                                                  monkeypatch, capsys):
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
    real = FusionPipeline.__init__

    def build(self, *args, **kwargs):
        real(self, *args, **kwargs)
        kill_self(signal.SIGINT)

    monkeypatch.setattr(FusionPipeline, '__init__', build)
    out = tmp_path / 'out'
    assert cli(['replay', str(short_bag), '--out', str(out), '--quiet', *CLASSICAL]) == 130
    line = only_line(capsys.readouterr().err, 'replay', signal.SIGINT)
    assert 'before it had written any result' in line
    assert not out.exists() and not (tmp_path / 'out_report').exists()  # a rerun just works


# --- SIGHUP: the terminal or SSH session closed ------------------------------------------------

def test_replay_sighup_with_its_terminal_gone_still_closes_the_bag_and_writes_the_report(
        long_bag, tmp_path):
    """Progress on a terminal that is then closed: writes to it fail (EIO) after the hangup."""
    out = tmp_path / 'out'
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', 'replay', str(long_bag),
                                 '--out', str(out), '--no-metrics', *CLASSICAL], cwd=root,
                                env=env, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=as_at_a_terminal)
    finally:
        os.close(slave)
    try:
        wait = time.monotonic() + 180
        while committed_messages(being_written(out, 'out.db3')) < 12:
            assert proc.poll() is None, proc.returncode
            assert time.monotonic() < wait, 'no committed frame in 180 s'
            try:
                os.read(master, 65536)  # the terminal shows the progress bar
            except OSError:
                pass
            time.sleep(0.01)
    finally:
        os.close(master)  # the terminal window is closed: writes to it now fail
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=180) == 129
    assert (out / 'metadata.yaml').is_file()
    no_journal(out)
    counts = bag_counts(out)
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['interrupted'] == 'SIGHUP'
    replay_books(report)
    assert counts['/fused/image'] == report['pairs']['fused'] >= 3


@pytest.mark.parametrize('command', ['make-bag', 'evaluate'])
def test_sighup_stops_make_bag_and_evaluate_like_sigterm(pairs, tmp_path, command):
    out = tmp_path / 'out'
    if command == 'make-bag':
        proc = start('make-bag', '--ir', str(pairs[2]), '--vis', str(pairs[3]), '--out',
                     str(out), '--repeat', '150', '--quiet')
        wait_for(proc, lambda: committed_messages(being_written(out, 'out.db3')) >= 8,
                 'a committed frame')
    else:
        proc = start('evaluate', '--ir', str(pairs[0]), '--vis', str(pairs[1]), '--out',
                     str(out), '--quiet', *CLASSICAL)
        wait_for(proc, lambda: being_written(out, 'fused').is_dir() and
                 len(list(being_written(out, 'fused').iterdir())) >= 3, 'a fused pair')
    signal_times(proc, signal.SIGHUP)
    status, _, err = finish(proc)
    assert status == 129, err[-2000:]
    only_line(err, command, signal.SIGHUP)
    if command == 'make-bag':
        no_journal(out)
        assert len(set(bag_counts(out).values())) == 1
    else:
        report = json.loads((out / 'metrics.json').read_text())
        assert report['interrupted'] == 'SIGHUP'
        assert sorted(p.stem for p in (out / 'fused').iterdir()) == sorted(report['per_image'])


def test_live_sighup_stops_the_node_and_writes_its_stats(tmp_path):
    pytest.importorskip('cyclonedds')
    stats = tmp_path / 'stats.json'
    proc = start('live', '--domain-id', str(150 + os.getpid() % 50), '--localhost-only',
                 '--status-period', '0', '--stats-json', str(stats), *CLASSICAL)
    line = proc.stdout.readline()  # "sgdfuse live: /fusion_node active on ..." once it runs
    if 'active' not in line:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f'live did not start: {line} {err[-2000:]}')
    signal_times(proc, signal.SIGHUP, gaps=(0.02,))
    status, out, err = finish(proc)
    assert status == 0, err[-2000:]  # its normal end, books balanced
    assert 'Traceback' not in err and 'sgdfuse live: stopped' in out
    assert json.loads(stats.read_text())['inputs']


def test_a_dead_reader_of_stderr_does_not_cost_the_report(long_bag, tmp_path):
    """``sgdfuse replay ... 2>&1 | tee log`` and Ctrl-C: tee dies first, writes fail (EPIPE)."""
    out = tmp_path / 'out'
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', 'replay', str(long_bag),
                             '--out', str(out), '--no-metrics', *CLASSICAL], cwd=root, env=env,
                            stdout=write_end, stderr=write_end, start_new_session=True,
                            preexec_fn=as_at_a_terminal)
    os.close(write_end)
    try:
        assert os.read(read_end, 100).startswith(b'replay: ')  # its first line: it runs
        wait_for(proc, lambda: committed_messages(being_written(out, 'out.db3')) >= 12,
                 'a committed frame')
    finally:
        os.close(read_end)  # the reader is gone
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=180) == 130
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['interrupted'] == 'SIGINT'
    replay_books(report)
    no_journal(out)
    assert bag_counts(out)['/fused/image'] == report['pairs']['fused']


def nohup():
    as_at_a_terminal()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_a_signal_ignored_at_start_stays_ignored(long_bag, tmp_path):
    """``nohup sgdfuse replay ...``: SIGHUP is ignored when it starts, and so it stays."""
    out = tmp_path / 'out'
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', 'replay', str(long_bag),
                             '--out', str(out), '--quiet', '--no-metrics', *CLASSICAL],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=nohup)
    wait_for(proc, lambda: committed_messages(being_written(out, 'out.db3')) >= 12,
             'a committed frame')
    signal_times(proc, signal.SIGHUP)
    status, _, err = finish(proc)
    assert status == 0 and err.strip() == '', err
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['interrupted'] is None and report['pairs']['fused'] == 400


def test_live_signal_while_the_node_is_configured_still_writes_its_stats(
        tmp_path, monkeypatch, capsys):
    pytest.importorskip('cyclonedds')
    from sgdfuse_ros.node.core import FusionNodeCore
    real = FusionNodeCore.configure

    def configure(self, *args, **kwargs):
        kill_self(signal.SIGTERM, signal.SIGTERM)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FusionNodeCore, 'configure', configure)
    stats = tmp_path / 'stats.json'
    assert cli(['live', '--domain-id', str(150 + os.getpid() % 50), '--localhost-only',
                '--status-period', '0', '--stats-json', str(stats), *CLASSICAL]) == 0
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.err and 'sgdfuse live: stopped' in captured.out
    assert json.loads(stats.read_text())['inputs']


def test_export_interrupted_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    real = torch.onnx.export

    def export(*args, **kwargs):
        real(*args, **kwargs)  # the .tmp is written; the check and the rename are next
        kill_self(signal.SIGINT)

    monkeypatch.setattr(torch.onnx, 'export', export)
    out = tmp_path / 'onnx'
    assert cli(['export', '--out', str(out), '--what', 'first-stage,refiner']) == 130
    line = only_line(capsys.readouterr().err, 'export', signal.SIGINT)
    assert 'while exporting first-stage (no file of it left)' in line
    assert list(out.iterdir()) == []


def test_demo_stops_between_its_steps(tmp_path, monkeypatch, capsys):
    from sgdfuse_ros.eval import synthetic_pairs
    real = synthetic_pairs.write_sample

    def sample(*args, **kwargs):
        done = real(*args, **kwargs)
        kill_self(signal.SIGTERM)  # the sample is written; evaluate is next
        return done

    monkeypatch.setattr(synthetic_pairs, 'write_sample', sample)
    from sgdfuse_ros.cli import demo  # imported by any earlier cli() call, with its own name
    monkeypatch.setattr(demo, 'write_sample', sample)
    out = tmp_path / 'demo'
    assert cli(['demo', '--out', str(out), '--pairs', '2', '--quiet']) == 143
    line = only_line(capsys.readouterr().err, 'demo', signal.SIGTERM)
    assert 'before its evaluate step' in line
    assert sorted(p.name for p in out.iterdir()) == ['sample']


# --- a full disk under training ------------------------------------------------------------------

def test_train_onto_a_full_disk_keeps_the_previous_checkpoint(train_data, tmp_path, small_disk,
                                                              capsys):
    disk = small_disk('400k')
    work = disk / 'work'
    argv = ['train', 'first-stage', '--data', str(train_data), '--out', str(tmp_path / 'fs.pt'),
            '--work', str(work), '--batch', '2', '--crop', '32', '--val-pairs', '0',
            '--threads', '1', '--arch', TINY_ARCH]
    assert cli(argv + ['--steps', '3']) == 0
    before = (work / 'checkpoint.pt').read_bytes()
    room = os.statvfs(disk)
    (disk / 'filler').write_bytes(b'\0' * max(room.f_bavail * room.f_frsize - 8192, 0))
    capsys.readouterr()
    assert cli(argv + ['--steps', '6', '--resume']) == 2
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    line = err.splitlines()[-1]
    assert line.startswith('sgdfuse train: error: cannot write '), line
    assert 'No space left on device' in line and 'checkpoint.pt (step 3) is as it was' in line
    assert not list(work.glob('*.tmp'))
    assert (work / 'checkpoint.pt').read_bytes() == before


def test_adapt_failed_checkpoint_write_is_one_line_and_no_tmp(short_bag, tmp_path, monkeypatch,
                                                              capsys):
    import errno

    from sgdfuse_ros.fusion import weights
    out = tmp_path / 'adapted'
    work = out / 'adapt_work' / 'first-stage'
    assert cli(adapt_args(short_bag, out, 6, '--stop-after', '2')) == 0
    before = (work / 'checkpoint.pt').read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(weights.os, 'fsync', no_space)
    capsys.readouterr()
    assert cli(adapt_args(short_bag, out, 6)) == 2
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    line = err.splitlines()[-1]
    assert line.startswith('sgdfuse adapt: error: cannot write '), line
    assert 'No space left on device (ENOSPC)' in line and '(step 2) is as it was' in line
    assert not list(work.glob('*.tmp')) and not list(out.glob('*.tmp'))
    assert (work / 'checkpoint.pt').read_bytes() == before
