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
``sgdfuse corpus``: many bags, one report (issue #25).

A failing bag costs only itself; a rerun skips the bags done with the same key; Ctrl-C keeps
the finished bags and writes the report; ``--baseline`` gives per-bag deltas and a verdict; the
fused output of a bag is the same bytes with ``--jobs 1``, ``--jobs 2`` and on Ray (there also
cut into chunk tasks by ``--chunk-frames``: test_corpus_chunks.py has the rest of chunking).
"""

import hashlib
import json
import os
from pathlib import Path
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from sgdfuse_ros.bag.corpus import compare, find_bags, read_manifest
from sgdfuse_ros.bag.writer import OutputDigest
from sgdfuse_ros.cli import corpus_run
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from waiting import as_at_a_terminal

ROOT = Path(__file__).resolve().parents[2]
PNG = b'\x89PNG\r\n\x1a\n'


def _bag(ir, vis, out: Path, repeat: int, seed: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--repeat',
                str(repeat), '--seed', str(seed), '--quiet']) == 0
    return out


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """Two small bags (2 and 4 pairs) and a broken one, in one folder."""
    root = tmp_path_factory.mktemp('corpus')
    ir, vis = write_sample(root / 'pairs', n=2, size=(160, 120))
    bags = root / 'bags'
    _bag(ir, vis, bags / 'day_a', 1, 1)
    _bag(ir, vis, bags / 'night' / 'b', 2, 2)  # found in a sub-folder
    broken = bags / 'broken'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not closed\n')
    return bags


def _run(*argv) -> int:
    return cli(['corpus', *argv, '--quiet'])


def _rows(out: Path) -> dict:
    report = json.loads((out / 'corpus.json').read_text())
    return {Path(r['bag']).name: r for r in report['bags']}


@pytest.fixture(scope='module')
def local_run(corpus, tmp_path_factory):
    """``--jobs 2`` over the corpus: the run the other tests compare with."""
    out = tmp_path_factory.mktemp('run') / 'jobs2'
    code = _run(str(corpus), '--out', str(out), '--jobs', '2')
    return code, out


def test_a_failing_bag_costs_only_itself(local_run, capsys):
    code, out = local_run
    assert code == 1  # one bag failed; the report is complete
    rows = _rows(out)
    assert set(rows) == {'day_a', 'b', 'broken'}
    assert rows['broken']['status'] == 'failed'
    assert 'not valid YAML' in rows['broken']['reason']
    for name, pairs in (('day_a', 2), ('b', 4)):
        row = rows[name]
        assert row['status'] == 'ok' and row['pairs'] == row['fused'] == pairs, row
        assert row['metrics']['Qabf'] > 0 and len(row['output_sha256']) == 64
        assert (out / 'bags' / row['id'] / 'report' / 'report.json').is_file()
        assert not (out / 'bags' / row['id'] / 'fused').exists()  # no --write-bags
    report = json.loads((out / 'corpus.json').read_text())
    assert report['totals']['status'] == {'ok': 2, 'failed': 1}
    assert report['totals']['fused'] == 6
    assert set(report['worst']) >= {'Qabf', 'VIF', 'SSIM'}
    md = (out / 'report.md').read_text()
    assert 'broken' in md and 'Worst bags' in md and '![metrics](plots/metrics.png)' in md
    for plot in ('metrics', 'throughput'):
        assert (out / 'plots' / f'{plot}.png').read_bytes().startswith(PNG)
    assert (out / 'corpus.csv').read_text().count('\n') == 4


def test_a_rerun_skips_the_bags_done_with_the_same_key(local_run, corpus, tmp_path):
    out = tmp_path / 'copy'
    shutil.copytree(local_run[1], out)  # the other tests keep the first run as it was
    entries = {name: (out / 'bags' / row['id'] / 'entry.json').stat().st_mtime_ns
               for name, row in _rows(out).items() if row['status'] == 'ok'}
    manifest = tmp_path / 'fleet.csv'
    manifest.write_text(f"bag,light\n{corpus / 'day_a'},day\n{corpus / 'night' / 'b'},night\n")
    assert _run('--manifest', str(manifest), '--out', str(out), '--jobs', '2') == 0
    rows = _rows(out)
    assert all(rows[n]['resumed'] and rows[n]['status'] == 'ok' for n in ('day_a', 'b'))
    assert {n: (out / 'bags' / rows[n]['id'] / 'entry.json').stat().st_mtime_ns
            for n in entries} == entries  # not replayed
    report = json.loads((out / 'corpus.json').read_text())
    assert report['groups']['light']['day']['bags'] == 1
    assert report['groups']['light']['night']['ok'] == 1
    assert '## By light' in (out / 'report.md').read_text()


def test_another_config_is_another_key(local_run, corpus, tmp_path):
    _, out = local_run
    first = json.loads((out / 'corpus.json').read_text())['key']
    from sgdfuse_ros.bag.corpus import run_key
    assert run_key({'a': 1}, [], {}) != run_key({'a': 2}, [], {})
    weights = tmp_path / 'w.pt'
    weights.write_bytes(b'1')
    one = run_key({'a': 1}, [('w', weights)], {})
    weights.write_bytes(b'2')  # same file name, other weights: done again
    assert run_key({'a': 1}, [('w', weights)], {}) != one
    assert len(first) == 20


def _fused_bag_digest(path: Path) -> str:
    from rosbags.rosbag2 import Reader
    digest = OutputDigest()
    with Reader(path) as reader:
        for conn, log_ns, data in reader.messages():
            digest.add(conn.topic, log_ns, data)
    return digest.hexdigest


def test_jobs_1_writes_the_same_fused_bytes_as_jobs_2(local_run, corpus, tmp_path):
    _, out2 = local_run
    out1 = tmp_path / 'jobs1'
    assert _run(str(corpus / 'night'), '--out', str(out1), '--jobs', '1', '--write-bags') == 0
    one, two = _rows(out1), _rows(out2)
    for name in ('b',):
        assert one[name]['output_sha256'] == two[name]['output_sha256'], name
        fused = Path(one[name]['fused_bag'])
        assert _fused_bag_digest(fused) == one[name]['output_sha256']  # the bag's own bytes


def test_baseline_gives_per_bag_deltas_and_a_verdict(local_run, corpus, tmp_path):
    out = tmp_path / 'copy'
    shutil.copytree(local_run[1], out)
    baseline = tmp_path / 'baseline.json'
    shutil.copy(out / 'corpus.json', baseline)
    # the same key: the bag is done (resumed), and compared with the run that did it
    assert _run(str(corpus / 'day_a'), '--out', str(out), '--baseline', str(baseline)) == 0
    report = json.loads((out / 'corpus.json').read_text())
    comparison = report['comparison']
    assert comparison['verdict'] == 'better on 0 of 1 bags compared, worse on 0, unchanged on 1'
    per_bag = comparison['per_bag'][_rows(out)['day_a']['id']]
    assert per_bag['same_output'] and all(v == 0 for v in per_bag['metrics'].values())
    assert 'Against the baseline' in (out / 'report.md').read_text()
    assert (out / 'plots' / 'baseline.png').read_bytes().startswith(PNG)
    assert 'delta:Qabf' in (out / 'corpus.csv').read_text()

    def row(name, status='ok', **metrics):
        return {'id': name, 'bag': f'/c/{name}', 'status': status, 'pairs_per_s': 5.0,
                'metrics': metrics, 'output_sha256': name}
    before = {'bags': [row('a', Qabf=0.5, VIF=0.5), row('b', Qabf=0.5, VIF=0.5),
                       row('c', Qabf=0.5, VIF=0.5), row('d', 'failed')]}
    now = [row('a', Qabf=0.6, VIF=0.55), row('b', Qabf=0.4, VIF=0.5),
           row('c', Qabf=0.5, VIF=0.5), row('d', Qabf=0.5)]
    result = compare(now, before)
    assert result['counts'] == {'better': 1, 'worse': 1, 'unchanged': 1, 'not_comparable': 1}
    assert result['verdict'] == ('better on 1 of 3 bags compared, worse on 1 (b), unchanged on '
                                 '1; 1 not comparable (not ok in both runs)')
    assert result['per_bag']['a']['metrics']['Qabf'] == pytest.approx(0.1)


def test_bad_input_is_one_line(corpus, tmp_path, capsys):
    cases = [
        (['corpus', '--out', str(tmp_path / 'o')], 'name bags or folders'),
        (['corpus', str(tmp_path / 'missing'), '--out', str(tmp_path / 'o')], 'no such bag'),
        (['corpus', str(corpus), '--out', str(corpus / 'day_a' / 'x')], 'the input'),
        (['corpus', str(tmp_path), '--out', str(tmp_path / 'o')], 'holds no ROS 2 bag'),
        (['corpus', str(corpus), '--out', str(tmp_path / 'o'), '--baseline',
          str(corpus / 'day_a' / 'metadata.yaml')], 'not a JSON corpus report'),
        (['corpus', str(corpus), '--out', str(tmp_path / 'o'), '--ray', 'nowhere'],
         'expected auto or a cluster address'),
    ]
    for argv, needle in cases:
        assert cli(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (argv, lines)
    assert not (tmp_path / 'o').exists()
    manifest = tmp_path / 'm.csv'
    manifest.write_text('bag,light\nday_a,day\n./day_a,night\n')
    with pytest.raises(InputError, match='named twice'):
        read_manifest(manifest)
    manifest.write_text('bag,light\nday_a\n')
    with pytest.raises(InputError, match='row 2: 1 columns'):
        read_manifest(manifest)
    assert [b.path.name for b in find_bags([corpus])] == ['broken', 'day_a', 'b']


class _FakeRay:
    """Stands in for ``ray`` in :func:`corpus_run._init_ray`: no Ray runs; records the start."""

    def __init__(self):
        self.started = None

    def init(self, address=None, **options):
        if address == 'auto':
            raise ConnectionError('Could not find any running Ray instance')
        self.started = dict(options, usage_stats=os.environ.get('RAY_USAGE_STATS_ENABLED'))


def test_a_ray_started_here_sends_no_usage_statistics_unless_asked(monkeypatch):
    monkeypatch.delenv('RAY_USAGE_STATS_ENABLED', raising=False)
    monkeypatch.setenv('PYTHONPATH', os.environ.get('PYTHONPATH', ''))  # _init_ray extends it
    fake = _FakeRay()
    assert corpus_run._init_ray(fake, 'auto', 3)[1] == 'started'
    assert fake.started['usage_stats'] == '0' and fake.started['num_cpus'] == 3
    monkeypatch.setenv('RAY_USAGE_STATS_ENABLED', '1')  # the user's own choice is kept
    fake = _FakeRay()
    corpus_run._init_ray(fake, 'auto', 2)
    assert fake.started['usage_stats'] == '1'


def _ray_processes_of(session_pid: int) -> list:
    """Return the command lines of Ray processes of the session that process ``pid`` started."""
    found = []
    for proc in Path('/proc').iterdir():
        try:
            args = (proc / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if f'_{session_pid}/' in args or args.rstrip().endswith(f'_{session_pid}'):
            found.append(args[:200])
    return found


def test_ray_auto_starts_a_local_ray_and_shuts_it_down(local_run, corpus, tmp_path):
    """
    With no Ray running, ``--ray auto`` starts one (in the background), uses it, stops it.

    Before the tests that start this module's own Ray (``ray_cluster``): ``--ray auto`` joins
    any Ray running on the machine.
    """
    pytest.importorskip('ray', reason='ray is not installed (pip install sgdfuse_ros[ray])')
    _, local = local_run
    out = tmp_path / 'ray_here'
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('RAY_ADDRESS', None)
    proc = subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', 'corpus',
                             str(corpus / 'day_a'), '--out', str(out), '--ray', 'auto',
                             '--quiet'], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('corpus --ray auto did not finish in 300 s')
    if proc.returncode != 0 and 'Ray' in err and not (out / 'corpus.json').exists():
        pytest.skip(f'a local Ray cannot start here: {err.strip().splitlines()[-1][:200]}')
    assert proc.returncode == 0, err[-2000:]
    report = json.loads((out / 'corpus.json').read_text())
    if report['run']['how'].startswith('Ray (the Ray running here'):  # --ray auto joins one
        pytest.skip('another Ray runs on this machine (--ray auto joined it); this test needs '
                    'none running (it runs before this module starts its own)')
    assert report['run']['how'].startswith('Ray (a local Ray started here'), report['run']
    row, reference = _rows(out)['day_a'], _rows(local)['day_a']
    assert row['status'] == 'ok' and row['output_sha256'] == reference['output_sha256']
    assert row['worker_pid'] != proc.pid  # fused in a Ray worker, not in the command
    deadline = time.monotonic() + 30  # Ray's processes end with the command's shutdown
    while _ray_processes_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ray_processes_of(proc.pid) == []


@pytest.fixture(scope='module')
def ray_cluster():
    """One local Ray for the module (its start is the slow part), or a skip saying why."""
    ray = pytest.importorskip('ray', reason='ray is not installed (pip install sgdfuse_ros[ray])')
    saved = os.environ.get('PYTHONPATH')
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (str(ROOT), saved) if p)
    handler = signal.getsignal(signal.SIGTERM)  # ray.init replaces it with an exit
    try:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
                 logging_level='ERROR', log_to_driver=False)
    except Exception as err:  # noqa: B902 - whatever keeps Ray from starting here
        pytest.skip(f'a local Ray cannot start here: {type(err).__name__}: {err}')
    finally:
        signal.signal(signal.SIGTERM, handler)
        if saved is None:
            os.environ.pop('PYTHONPATH', None)
        else:
            os.environ['PYTHONPATH'] = saved
    yield ray
    ray.shutdown()


def test_ray_runs_one_task_per_bag_with_the_same_fused_bytes(ray_cluster, local_run, corpus,
                                                             tmp_path):
    _, local = local_run
    out = tmp_path / 'ray'
    # b (4 pairs) as two chunk tasks of 3 and 1 pairs (--chunk-frames), day_a (2) as one task
    assert _run(str(corpus / 'day_a'), str(corpus / 'night'), str(corpus / 'broken'), '--out',
                str(out), '--ray', 'auto', '--chunk-frames', '3') == 1  # the broken bag
    rows, reference = _rows(out), _rows(local)
    assert rows['broken']['status'] == 'failed' and 'not valid YAML' in rows['broken']['reason']
    for name in ('day_a', 'b'):
        assert rows[name]['status'] == 'ok'
        assert rows[name]['output_sha256'] == reference[name]['output_sha256'], name
        for key in ('pairs', 'fused', 'failed', 'metrics'):
            assert rows[name][key] == reference[name][key], (name, key)
    assert [(c['first'], c['end'], c['fused']) for c in rows['b']['chunks']] == \
        [(0, 3, 3), (3, None, 1)]
    assert 'chunks' not in rows['day_a']
    pids = {rows[n]['worker_pid'] for n in rows} | {c['worker_pid'] for c in rows['b']['chunks']}
    assert os.getpid() not in pids  # run in Ray's worker processes
    report = json.loads((out / 'corpus.json').read_text())
    assert report['run']['how'].startswith('Ray (') and report['run']['ray'] == 'auto'
    assert ray_cluster.is_initialized()  # a Ray the command did not start is left running


def _committed(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=0.1) as conn:
            return conn.execute('SELECT COUNT(*) FROM messages').fetchone()[0]
    except sqlite3.Error:
        return 0


def test_ctrl_c_keeps_the_finished_bags_and_writes_the_report(corpus, tmp_path):
    ir, vis = corpus.parent / 'pairs' / 'ir', corpus.parent / 'pairs' / 'vis'
    bags = tmp_path / 'bags'
    long_bag = _bag(ir, vis, bags / 'long', 300, 3)  # 600 pairs: still running at the signal
    _bag(ir, vis, bags / 'short', 1, 4)
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', 'corpus', str(bags),
                             '--out', str(out), '--jobs', '2', '--write-bags', '--quiet',
                             '--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0'],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=as_at_a_terminal)
    long_folder = next(iter(find_bags([long_bag]))).id
    short_folder = next(iter(find_bags([bags / 'short']))).id

    def ready():
        scratch = sorted((out / 'bags' / long_folder).glob('.fused.sgdfuse-new-*/fused/*.db3'))
        return (out / 'bags' / short_folder / 'entry.json').is_file() and scratch and \
            _committed(scratch[0]) >= 12
    deadline = time.monotonic() + 120
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f'corpus ended before the signal ({proc.returncode}): '
                        f'{proc.communicate()[1][-2000:]}')
        assert time.monotonic() < deadline, 'the long bag never started'
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('corpus did not stop within 120 s of SIGINT')
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in err, err
    assert lines[0].startswith('sgdfuse corpus: interrupted by SIGINT: 1 of 2 bags done'), err
    report = json.loads((out / 'corpus.json').read_text())
    assert report['interrupted'] == 'SIGINT'
    rows = _rows(out)
    assert rows['short']['status'] == 'ok' and rows['short']['fused'] == 2
    assert rows['long']['status'] == 'interrupted'
    replayed = json.loads((out / 'bags' / long_folder / 'report' / 'report.json').read_text())
    assert replayed['interrupted'] == 'SIGINT' and 0 < replayed['pairs']['fused'] < 600
    assert rows['long']['fused'] == replayed['pairs']['fused']
    assert '**Interrupted**' in (out / 'report.md').read_text()
    assert hashlib.sha256((out / 'corpus.csv').read_bytes()).hexdigest()  # written whole


def _worker_of(pid: int) -> int:
    """Return the local worker process (spawned) of the corpus command ``pid``, or 0."""
    try:
        children = Path(f'/proc/{pid}/task/{pid}/children').read_text().split()
    except OSError:
        return 0
    for child in children:
        try:
            if b'spawn_main' in Path(f'/proc/{child}/cmdline').read_bytes():
                return int(child)
        except OSError:
            continue
    return 0


def test_a_worker_that_dies_is_replaced_and_its_bag_tried_again(corpus, tmp_path):
    ir, vis = corpus.parent / 'pairs' / 'ir', corpus.parent / 'pairs' / 'vis'
    bag = _bag(ir, vis, tmp_path / 'bags' / 'long', 100, 5)  # 200 pairs
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen([sys.executable, '-m', 'sgdfuse_ros.cli', 'corpus', str(bag),
                             '--out', str(out), '--jobs', '1', '--write-bags', '--quiet',
                             '--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0'],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=as_at_a_terminal)
    folder = out / 'bags' / find_bags([bag])[0].id
    deadline = time.monotonic() + 120
    while True:
        scratch = sorted(folder.glob('.fused.sgdfuse-new-*/fused/*.db3'))
        if scratch and _committed(scratch[0]) >= 12:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, 'the bag never started'
        time.sleep(0.02)
    worker = _worker_of(proc.pid)
    assert worker, 'no worker process found'
    os.kill(worker, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("corpus did not finish within 180 s of its worker's death")
    assert proc.returncode == 0, err
    row = _rows(out)['long']
    assert row['status'] == 'ok' and row['fused'] == 200 and row['attempts'] == 2
    assert row['worker_pid'] != worker
    assert _fused_bag_digest(Path(row['fused_bag'])) == row['output_sha256']
