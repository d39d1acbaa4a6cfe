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
``sgdfuse corpus --chunk-frames N``: a long bag as chunks of pairs, merged into one entry.

A chunked bag has the same counts, the same metrics (over all frames) and the same fused bytes
as the whole bag's replay, whatever the chunk size (1; one that does not divide the pair count);
a finished chunk is kept across a stop and not done again by the rerun. The chunk tasks run
here in this process (:func:`corpus_run.fuse_bag`, the function a worker runs), and once
through the command with local workers; the Ray path is in test_corpus.py (its local Ray).
"""

import json
from pathlib import Path
import signal

import pytest
from sgdfuse_ros.bag.chunks import plan
from sgdfuse_ros.bag.corpus import find_bags
from sgdfuse_ros.bag.reader import recorded_messages
from sgdfuse_ros.bag.replay import Replay
from sgdfuse_ros.bag.report import ReplayReport
from sgdfuse_ros.bag.writer import OutputDigest
from sgdfuse_ros.cli import corpus_chunks, corpus_run
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.cli.guard import StopRequest
from sgdfuse_ros.eval.synthetic_pairs import write_sample

PAIRS = 7
#: cheap stages; the AGC window smoothed over time, so that state crosses every chunk border
#: (with the target tracker's ids, which always do)
OVERRIDES = [('first_stage.type', 'laplacian'), ('refiner.steps', 0), ('agc.mode', 'always'),
             ('agc.smoothing', 0.5), ('threads', 1), ('thread_policy', 'fixed')]
OPTIONS = {'config': None, 'overrides': OVERRIDES, 'thermal_topic': None,
           'visible_topic': None, 'no_metrics': False, 'every_frame_prior': False,
           'storage': 'sqlite3'}


@pytest.fixture(scope='module', autouse=True)
def no_replay_plot():
    """Leave out the replay report's matplotlib plot (seconds here; not what is tested)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ReplayReport, 'plot', lambda self: None)
        yield


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    root = tmp_path_factory.mktemp('chunks')
    ir, vis = write_sample(root / 'pairs', n=PAIRS, size=(160, 120))
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(root / 'bag'),
                '--seed', '7', '--quiet']) == 0
    return find_bags([root / 'bag'])[0]


def _task(out: Path, bag) -> dict:
    return corpus_run.make_task(out, bag, OPTIONS, 'key', True)


@pytest.fixture(scope='module')
def whole(bag, tmp_path_factory):
    """Replay the bag as one task: the reference."""
    row = corpus_run.fuse_bag(_task(tmp_path_factory.mktemp('whole'), bag))
    assert row['status'] == 'ok' and row['pairs'] == row['fused'] == PAIRS, row
    return row


def _report(row: dict) -> dict:
    return json.loads((Path(row['report']).parent / 'report.json').read_text())


def _bag_digest(path) -> str:
    from rosbags.rosbag2 import Reader
    digest = OutputDigest()
    with Reader(path) as reader:
        for conn, log_ns, data in reader.messages():
            digest.add(conn.topic, log_ns, data)
    return digest.hexdigest


def _chunked(out: Path, bag, size: int, chunks=None) -> dict:
    tasks = corpus_chunks.split(_task(out, bag), size)
    chunks = chunks or corpus_chunks.ChunkedBags()
    merged = [row for row in (chunks.add(corpus_run.fuse_bag(t)) for t in chunks.expect(tasks))
              if row is not None]
    assert len(merged) == 1
    return merged[0]


def test_a_bag_is_cut_by_pair_index():
    assert plan(7, 3) == [(0, 3), (3, 6), (6, None)]  # the last takes whatever pairs remain
    assert plan(7, 1) == [(k, k + 1) for k in range(6)] + [(6, None)]
    assert plan(6, 3) == [(0, 3), (3, None)]
    assert plan(1000, 1000) == plan(0, 5) == plan(5000, 0) == [(0, None)]  # one task


def test_short_bags_are_planned_from_their_metadata_alone(bag, tmp_path, monkeypatch):
    from rosbags.rosbag2 import Reader
    recorded = recorded_messages(bag.path)
    with Reader(bag.path) as reader:
        assert recorded == reader.message_count >= 2 * PAIRS  # both cameras (and their infos)
    opened = []
    real = corpus_chunks.expected_pairs
    monkeypatch.setattr(corpus_chunks, 'expected_pairs',
                        lambda task: opened.append(task['bag']) or real(task))
    task = _task(tmp_path, bag)
    assert corpus_chunks.split(task, recorded) == [task] and opened == []  # short for sure
    assert corpus_chunks.split(task, recorded - 1) == [task] and len(opened) == 1  # counted
    assert len(corpus_chunks.split(task, 3)) == 3 and len(opened) == 2  # 7 pairs: 3 chunks
    broken = tmp_path / 'broken'
    broken.mkdir()
    assert recorded_messages(broken) is None  # no metadata.yaml
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not closed\n')
    assert recorded_messages(broken) is None
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: {message_count: -1}\n')
    assert recorded_messages(broken) is None


@pytest.mark.parametrize('size, fused', [(1, [1] * PAIRS), (3, [3, 3, 1])])
def test_a_chunked_bag_is_the_whole_replay(bag, whole, tmp_path, size, fused):
    row = _chunked(tmp_path, bag, size)
    assert row['status'] == 'ok', row['reason']
    assert [c['fused'] for c in row['chunks']] == fused
    assert [c['first'] for c in row['chunks']] == list(range(0, PAIRS, size))
    for name in ('pairs', 'fused', 'failed', 'rejected', 'metrics', 'output_sha256'):
        assert row[name] == whole[name], name  # metrics: exactly the means over all frames
    assert _bag_digest(row['fused_bag']) == _bag_digest(whole['fused_bag']) == \
        whole['output_sha256']  # one fused bag, the same messages, log times and bytes
    mine, ref = _report(row), _report(whole)
    assert [f['index'] for f in mine['frames']] == list(range(PAIRS))
    assert [f['metrics'] for f in mine['frames']] == [f['metrics'] for f in ref['frames']]
    for name in ('messages', 'pairs', 'metrics', 'notes', 'prior_sources'):
        assert mine[name] == ref[name], name
    assert mine['contact_sheet'] == 'contact_sheet.png'
    # throughput: fused pairs over the chunks' summed replay times
    assert row['pairs_per_s'] == pytest.approx(
        PAIRS / sum(c['wall_s'] for c in row['chunks']))
    folder = Path(row['report']).parents[1]
    assert (folder / 'entry.json').is_file() and not (folder / 'chunks').exists()


def test_without_the_state_carried_over_the_border_the_output_differs(
        bag, whole, tmp_path, monkeypatch):
    monkeypatch.setattr(Replay, 'advance', lambda self, pair: None)
    row = _chunked(tmp_path, bag, 3)
    assert row['fused'] == PAIRS and row['output_sha256'] != whole['output_sha256']


def test_a_stop_keeps_the_finished_chunks_and_the_rerun_does_the_rest(bag, whole, tmp_path):
    tasks = corpus_chunks.split(_task(tmp_path, bag), 3)
    chunks = corpus_chunks.ChunkedBags()
    assert chunks.expect(tasks) == tasks
    assert chunks.add(corpus_run.fuse_bag(tasks[0])) is None
    stop = StopRequest(())
    stop.signum = signal.SIGINT  # as the worker's stop request after Ctrl-C
    assert chunks.add(corpus_run.fuse_bag(tasks[1], stop=stop)) is None
    row = chunks.add(corpus_run.failed_row(tasks[2], 'not_run', 'not started'))
    assert row['status'] == 'interrupted' and row['fused'] == 3, row
    assert '1 of 3 chunks done and kept' in row['reason']
    assert [c['status'] for c in row['chunks']] == ['ok', 'interrupted', 'not_run']
    again = corpus_chunks.ChunkedBags()
    assert again.expect(tasks) == tasks[1:]  # chunk 0 is not done again
    row = [r for r in (again.add(corpus_run.fuse_bag(t)) for t in tasks[1:]) if r][0]
    assert row['status'] == 'ok' and [c['resumed'] for c in row['chunks']] == [True, False,
                                                                               False]
    assert row['output_sha256'] == whole['output_sha256']
    assert row['metrics'] == whole['metrics']


def test_the_command_runs_chunks_on_local_workers(bag, whole, tmp_path):
    out = tmp_path / 'out'
    argv = ['corpus', str(bag.path), '--out', str(out), '--jobs', '1', '--chunk-frames', '3',
            '--write-bags', '--quiet']
    for name, value in OVERRIDES[:4]:
        argv += ['--set', f'{name}={value}']
    assert cli(argv) == 0
    report = json.loads((out / 'corpus.json').read_text())
    [row] = report['bags']
    assert row['status'] == 'ok' and row['fused'] == PAIRS
    assert len(row['chunks']) == 3 and all(c['worker_pid'] for c in row['chunks'])
    assert row['output_sha256'] == whole['output_sha256']
    assert _bag_digest(row['fused_bag']) == whole['output_sha256']
    assert report['totals']['fused'] == PAIRS and report['totals']['bags'] == 1
