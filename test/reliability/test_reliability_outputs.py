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
Issue #19, classes 1 and 2 (and two output items of class 8).

1. An output never destroys an input: every command refuses, in one line and before any work,
   an output that is, holds or lies inside one of its inputs (symbolic links, ``..`` and ``.``
   resolved, hard links compared), and replay's report that overlaps its bag.
2. A previous result is replaced only when the new one is ready: the pipeline is built first,
   the new outputs are written beside the old ones and swapped in at the end, so a re-run that
   fails (truncated weights, a full disk, no pairs) leaves the previous results as they were.
8. ``--report`` equal to ``--out`` is refused; killed ``backend: onnx`` runs leave no
   ``sgdfuse_onnx_*`` folders behind (one per-user folder, swept by the next run).
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys

from bag_support import make_bag, read_bag, tiny_pairs
import pytest
from sgdfuse_ros import writing
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.cli.outputs import check_apart, ReplacedFiles, ReplacedPath
from sgdfuse_ros.config import models_dir
from sgdfuse_ros.errors import InputError

CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
REPO = Path(__file__).resolve().parents[2]


def snapshot(*paths) -> dict:
    """{path: sha256} of every file under ``paths`` (files or folders), links not followed."""
    found = {}
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob('*') if p.is_file())
        for path in files:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert found, paths
    return found


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err, err
    line = err.splitlines()[-1]
    assert line.startswith(f'sgdfuse {command}: error: '), err
    return line


def no_scratch(folder: Path) -> None:
    """No hidden scratch folder of a run is left beside or inside an output."""
    left = [p.name for p in Path(folder).rglob('*') if 'sgdfuse-' in p.name and '-new-' in p.name]
    assert not left, left


def truncated_weights(tmp_path: Path) -> Path:
    path = tmp_path / 'truncated_first_stage.pt'
    data = (models_dir() / 'first_stage.pt').read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture
def pairs(tmp_path):
    return tiny_pairs(tmp_path, n=3)


# --- class 1: an output never destroys an input --------------------------------------------


def test_replay_into_the_input_bag_folder_is_refused(tmp_path, capsys):
    """`replay B --out B/good.db3 --overwrite` replaced the input's .db3 with a folder."""
    bag = make_bag(tmp_path, 'B')
    db3 = next(bag.glob('*.db3'))
    before = snapshot(bag)
    for out in (db3, bag / 'good.db3', bag / 'new_bag', bag):
        assert cli(['replay', str(bag), '--out', str(out), '--overwrite', '--quiet',
                    *CLASSICAL]) == 2
        line = one_line(capsys, 'replay')
        assert 'the input IN_BAG' in line, line
        assert snapshot(bag) == before
    assert sum(len(v) for v in read_bag(bag)[0].values()) == 16


def test_replay_of_a_storage_file_into_its_folder_is_refused(tmp_path, capsys):
    """`replay C/rec.db3 --out C --overwrite` deleted the folder holding the recording."""
    bag = make_bag(tmp_path, 'made')
    folder = tmp_path / 'C'
    folder.mkdir()
    rec = folder / 'rec.db3'
    shutil.copy(next(bag.glob('*.db3')), rec)
    before = snapshot(folder)
    for out in (folder, rec, tmp_path):
        assert cli(['replay', str(rec), '--out', str(out), '--overwrite', '--quiet',
                    *CLASSICAL]) == 2
        assert 'holds the input IN_BAG' in one_line(capsys, 'replay') or out == rec
        assert snapshot(folder) == before


def test_replay_through_a_link_or_a_relative_path_is_refused(tmp_path, capsys, monkeypatch):
    bag = make_bag(tmp_path, 'B')
    before = snapshot(bag)
    link = tmp_path / 'link'
    link.symlink_to(bag)
    monkeypatch.chdir(tmp_path)
    cases = [('--out', str(link)), ('--out', str(link / 'x')), ('--out', '.'),
             ('--out', 'B/../B'), ('--report', 'B'), ('--report', str(link / 'r'))]
    for option, value in cases:
        argv = ['replay', 'B', '--out', 'fused', option, value, '--overwrite', '--quiet',
                *CLASSICAL]
        if option == '--out':
            argv = ['replay', 'B', '--out', value, '--overwrite', '--quiet', *CLASSICAL]
        assert cli(argv) == 2, value
        assert 'the input IN_BAG' in one_line(capsys, 'replay'), value
        assert snapshot(bag) == before
    assert not (tmp_path / 'fused').exists()


def test_adapt_out_holding_the_starting_weights_is_refused(tmp_path, capsys):
    """`adapt --out DIR` where DIR holds the starting weights overwrote them."""
    bag = make_bag(tmp_path, 'B')
    mine = tmp_path / 'mine'
    mine.mkdir()
    shutil.copy(models_dir() / 'first_stage.pt', mine / 'first_stage.pt')
    shipped = snapshot(models_dir())
    before = snapshot(mine)
    cases = [['--first-stage', str(mine / 'first_stage.pt'), '--out', str(mine)],
             ['--out', str(models_dir())],                  # the shipped weights
             ['--first-stage', str(mine / 'first_stage.pt'), '--out', str(tmp_path / 'ok'),
              '--work', str(mine)],
             ['--out', str(bag)]]
    for extra in cases:
        assert cli(['adapt', str(bag), '--stage', 'first-stage', '--steps', '1', '--quiet',
                    *extra]) == 2, extra
        line = one_line(capsys, 'adapt')
        assert 'the input' in line and ('holds' in line or ' is ' in line), line
    assert snapshot(mine) == before and snapshot(models_dir()) == shipped
    assert not (tmp_path / 'ok').exists()


def _every_command_cases(tmp_path, pairs):
    ir, vis = pairs
    data = tmp_path / 'data'
    data.mkdir()
    shutil.copytree(ir, data / 'ir')
    shutil.copytree(vis, data / 'vis')
    (data / 'split.json').write_text(json.dumps({'test': sorted(p.stem for p in ir.iterdir())}))
    config = tmp_path / 'conf' / 'fusion.yaml'
    config.parent.mkdir()
    shutil.copy(REPO / 'config' / 'fusion.yaml', config)
    weights = tmp_path / 'w' / 'first_stage.pt'
    weights.parent.mkdir()
    shutil.copy(models_dir() / 'first_stage.pt', weights)
    fused = tmp_path / 'fused'
    shutil.copytree(ir, fused)
    hard = tmp_path / 'hard_split.json'
    os.link(data / 'split.json', hard)
    src = ['--ir', str(ir), '--vis', str(vis)]
    cases = {
        'evaluate --out is the thermal folder': ['evaluate', *src, '--out', str(ir)],
        'evaluate --out inside the visible folder': ['evaluate', *src, '--out', str(vis / 'o')],
        'evaluate --out holds the data': ['evaluate', '--data', str(data), '--out', str(data)],
        'evaluate --out holds the config': ['evaluate', *src, '--config', str(config),
                                            '--out', str(config.parent)],
        'evaluate --out holds the weights': ['evaluate', *src, '--set',
                                             f'first_stage.weights={weights}', '--out',
                                             str(weights.parent)],
        'metrics --out is the split file': ['metrics', str(fused), '--data', str(data),
                                            '--out', str(data / 'split.json')],
        'metrics --out is a hard link of the split': ['metrics', str(fused), '--data',
                                                      str(data), '--out', str(hard)],
        'metrics --out inside a fused folder': ['metrics', str(fused), *src, '--out',
                                                str(fused / 'scores.json')],
        'make-bag --out is the thermal folder': ['make-bag', *src, '--out', str(ir),
                                                 '--overwrite'],
        'make-bag --out holds the data': ['make-bag', '--data', str(data), '--subset', 'test',
                                          '--out', str(tmp_path), '--overwrite'],
        'train --out is the --init weights': ['train', 'first-stage', '--data', str(data),
                                              '--init', str(weights), '--out', str(weights)],
        'train --work holds the data': ['train', 'first-stage', '--data', str(data), '--out',
                                        str(tmp_path / 'new.pt'), '--work', str(tmp_path)],
        'train --out is the refiner first stage': ['train', 'refiner', '--data', str(data),
                                                   '--first-stage', str(weights), '--out',
                                                   str(weights)],
        'train --out is its own checkpoint': ['train', 'first-stage', '--data', str(data),
                                              '--work', str(tmp_path / 'work'), '--out',
                                              str(tmp_path / 'work' / 'checkpoint.pt')],
        'export --out holds the config': ['export', '--config', str(config), '--out',
                                          str(config.parent)],
        'export --out holds the weights': ['export', '--set', f'first_stage.weights={weights}',
                                           '--what', 'first-stage', '--out', str(weights.parent)],
        'live --stats-json is the config': ['live', '--config', str(config), '--stats-json',
                                            str(config), '--duration', '0.1'],
        'demo --out holds the data': ['demo', '--data', str(data), '--out', str(tmp_path)],
    }
    return cases, [ir, vis, data, config, weights, fused]


def test_every_command_refuses_an_output_over_an_input(tmp_path, pairs, capsys):
    cases, inputs = _every_command_cases(tmp_path, pairs)
    before = snapshot(*inputs)
    listing = sorted(p.name for p in tmp_path.iterdir())
    for name, argv in cases.items():
        code = cli(argv)
        line = one_line(capsys, argv[0])
        assert code == 2, (name, line)
        assert 'the input' in line or 'the two outputs' in line or '--work' in line, (name, line)
        assert snapshot(*inputs) == before, name
        assert sorted(p.name for p in tmp_path.iterdir()) == listing, name


def test_outputs_apart_from_inputs_the_check_itself(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'f').write_text('x')
    (tmp_path / 'ab').mkdir()
    fine = [('--out', tmp_path / 'ab'), ('--other', tmp_path / 'a2' / 'x')]
    check_apart([('in', tmp_path / 'a')], fine)  # a sibling that shares a prefix is apart
    check_apart([('in', None), ('cfg', '')], [('--out', tmp_path / 'a'), ('--no', None)])
    for out, how in ((tmp_path / 'a', ' is the input'), (tmp_path / 'a' / 'g', 'is inside'),
                     (tmp_path, 'holds'), (tmp_path / 'ab' / '..' / 'a' / 'f', 'is inside')):
        with pytest.raises(InputError, match=how):
            check_apart([('in', tmp_path / 'a')], [('--out', out)])
    if os.geteuid() == 0 and shutil.which('mount'):  # a bind mount: another path, same folder
        (tmp_path / 'bound').mkdir()
        if subprocess.run(['mount', '--bind', str(tmp_path / 'a'), str(tmp_path / 'bound')],
                          capture_output=True).returncode == 0:
            try:
                for out, how in ((tmp_path / 'bound', ' is the input'),
                                 (tmp_path / 'bound' / 'new', 'is inside')):
                    with pytest.raises(InputError, match=how):
                        check_apart([('in', tmp_path / 'a')], [('--out', out)])
            finally:
                subprocess.run(['umount', '-l', str(tmp_path / 'bound')], capture_output=True)
    os.link(tmp_path / 'a' / 'f', tmp_path / 'hard')
    (tmp_path / 'soft').symlink_to(tmp_path / 'a' / 'f')
    for out in (tmp_path / 'ab' / '..' / 'a' / 'f', tmp_path / 'hard', tmp_path / 'soft'):
        with pytest.raises(InputError, match=' is the input'):
            check_apart([('in', tmp_path / 'a' / 'f')], [('--out', out)])
    with pytest.raises(InputError, match='the two outputs must be apart'):
        check_apart([], [('--out', tmp_path / 'x'), ('--report', tmp_path / 'x' / 'r')])
    check_apart([], [('--out', tmp_path / 'x'), ('--work', tmp_path / 'x' / 'w')],
                outputs_apart=False)


# --- class 2: previous results are replaced only when the new ones are ready ----------------


def evaluate(ir, vis, out, *extra):
    return cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *CLASSICAL, *extra])


def test_an_evaluate_rerun_that_cannot_build_keeps_the_previous_run(tmp_path, pairs, capsys):
    ir, vis = pairs
    prev = tmp_path / 'PREV'
    assert evaluate(ir, vis, prev) == 0
    (prev / 'notes.txt').write_text('mine')
    before = snapshot(prev)
    bad = truncated_weights(tmp_path)
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(prev), '--quiet',
                '--set', f'first_stage.weights={bad}']) == 2
    line = one_line(capsys, 'evaluate')
    assert 'cannot be read' in line and str(bad) in line, line
    assert snapshot(prev) == before
    no_scratch(prev)


def test_an_evaluate_rerun_onto_a_full_disk_keeps_the_previous_run(tmp_path, pairs, capsys,
                                                                   monkeypatch):
    ir, vis = pairs
    prev = tmp_path / 'PREV'
    assert evaluate(ir, vis, prev) == 0
    before = snapshot(prev)
    real = writing.write_bytes

    def full_disk(path, data):
        if Path(path).name == 'metrics.json':
            raise OSError(errno.ENOSPC, 'No space left on device', str(path))
        real(path, data)

    monkeypatch.setattr(writing, 'write_bytes', full_disk)
    assert evaluate(ir, vis, prev, '--label', 'second') == 2
    line = one_line(capsys, 'evaluate')
    assert 'ENOSPC' in line and f'previous results in {prev}' in line, line
    assert str(prev / 'metrics.json') in line  # named as the user named it
    assert snapshot(prev) == before
    no_scratch(prev)


def test_a_completed_evaluate_rerun_replaces_the_previous_run_whole(tmp_path, pairs, capsys):
    ir, vis = pairs
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out, '--limit', '2') == 0
    (out / 'registered_sources').mkdir()  # a file of the previous run the new one lacks
    (out / 'mine.txt').write_text('kept')
    assert evaluate(ir, vis, out, '--label', 'second', '--contact-rows', '0') == 0
    assert json.loads((out / 'metrics.json').read_text())['label'] == 'second'
    assert sorted(p.name for p in (out / 'fused').iterdir()) == [
        'sample_000.png', 'sample_001.png', 'sample_002.png']
    assert not (out / 'registered_sources').exists() and not (out / 'contact_sheet.png').exists()
    assert (out / 'mine.txt').read_text() == 'kept'
    assert 'replaced the previous run' not in capsys.readouterr().err  # --quiet
    no_scratch(out)


def test_a_replay_rerun_that_cannot_build_keeps_the_previous_bag_and_report(tmp_path, capsys):
    bag = make_bag(tmp_path, 'B')
    out = tmp_path / 'fused'
    assert cli(['replay', str(bag), '--out', str(out), '--quiet', '--no-metrics',
                *CLASSICAL]) == 0
    report = tmp_path / 'fused_report'
    before = snapshot(out, report)
    bad = truncated_weights(tmp_path)
    assert cli(['replay', str(bag), '--out', str(out), '--overwrite', '--quiet',
                '--set', f'first_stage.weights={bad}']) == 2
    assert 'cannot be read' in one_line(capsys, 'replay')
    assert snapshot(out, report) == before
    assert json.loads((report / 'report.json').read_text())['pairs']['fused'] == 4
    no_scratch(tmp_path)


def test_a_replay_rerun_that_fails_keeps_both_and_a_good_one_replaces_both(tmp_path, capsys):
    bag = make_bag(tmp_path, 'B')
    out = tmp_path / 'fused'
    assert cli(['replay', str(bag), '--out', str(out), '--quiet', *CLASSICAL]) == 0
    report = tmp_path / 'fused_report'
    before = snapshot(out, report)
    # no pair within the slop: a run that ends in an error replaces nothing
    assert cli(['replay', str(bag), '--out', str(out), '--overwrite', '--quiet', *CLASSICAL,
                '--set', 'sync.slop=0.0001']) == 2
    line = one_line(capsys, 'replay')
    assert 'no thermal/RGB pairs' in line and 'nothing of this run was kept' in line, line
    assert snapshot(out, report) == before
    no_scratch(tmp_path)
    # a run that succeeds replaces both, consistently
    assert cli(['replay', str(bag), '--out', str(out), '--overwrite', '--quiet', '--no-metrics',
                *CLASSICAL]) == 0
    result = json.loads((report / 'report.json').read_text())
    assert result['metrics'] is None and result['pairs']['fused'] == 4
    assert read_bag(out)[0]['/fused/image'].__len__() == 4
    assert sorted(p.name for p in out.iterdir()) == ['fused.db3', 'metadata.yaml']
    no_scratch(tmp_path)


def test_a_replay_rerun_onto_a_full_disk_keeps_the_previous_bag(tmp_path, capsys, monkeypatch):
    from sgdfuse_ros.bag import writer as writer_module
    bag = make_bag(tmp_path, 'B')
    out = tmp_path / 'fused'
    assert cli(['replay', str(bag), '--out', str(out), '--quiet', *CLASSICAL]) == 0
    before = snapshot(out, tmp_path / 'fused_report')
    real, count = writer_module.BagWriter.write, []

    def full_disk(self, topic, *args, **kwargs):
        count.append(topic)
        if len(count) > 3:
            raise OSError(errno.ENOSPC, 'No space left on device', str(self.path))
        return real(self, topic, *args, **kwargs)

    monkeypatch.setattr(writer_module.BagWriter, 'write', full_disk)
    assert cli(['replay', str(bag), '--out', str(out), '--overwrite', '--quiet',
                *CLASSICAL]) == 2
    line = one_line(capsys, 'replay')
    assert 'ENOSPC' in line and 'nothing of this run was kept' in line, line
    assert '-new-' not in line  # the scratch place is never shown
    assert snapshot(out, tmp_path / 'fused_report') == before
    no_scratch(tmp_path)


def test_a_make_bag_rerun_that_fails_keeps_the_previous_bag(tmp_path, pairs, capsys):
    ir, vis = pairs
    out = tmp_path / 'bag'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out),
                '--quiet']) == 0
    before = snapshot(out)
    broken = tmp_path / 'broken'
    shutil.copytree(ir, broken)
    for image in broken.iterdir():
        image.write_bytes(image.read_bytes()[:40])  # no pair can be written
    assert cli(['make-bag', '--ir', str(broken), '--vis', str(vis), '--out', str(out),
                '--overwrite', '--quiet']) == 2
    line = one_line(capsys, 'make-bag')
    assert 'no pair could be written' in line and 'previous' in line, line
    assert snapshot(out) == before
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--overwrite',
                '--quiet', '--seed', '3']) == 0
    assert snapshot(out) != before
    no_scratch(tmp_path)


class _FillingFile:
    """A file object whose disk fills up after 4,096 bytes (as on the user's full disk)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[:4096])
        raise OSError(errno.ENOSPC, 'No space left on device')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False


def _metrics(tmp_path, pairs, out, *extra):
    ir, vis = pairs
    fused = tmp_path / 'fused'
    if not fused.exists():
        shutil.copytree(vis, fused)
    return cli(['metrics', str(fused), '--ir', str(ir), '--vis', str(vis), '--out', str(out),
                *extra])


def test_metrics_onto_a_full_disk_keeps_the_previous_file(tmp_path, pairs, capsys, monkeypatch):
    out = tmp_path / 'results.json'
    assert _metrics(tmp_path, pairs, out) == 0
    before = out.read_bytes()
    real_open = builtins.open

    def filling_open(file, mode='r', *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return _FillingFile(handle) if 'w' in mode else handle

    monkeypatch.setattr(writing, 'open', filling_open, raising=False)
    assert _metrics(tmp_path, pairs, out, '--names', 'EN') == 2
    line = one_line(capsys, 'metrics')
    assert 'No space left on device (ENOSPC)' in line and 'previous file' in line, line
    assert out.read_bytes() == before
    json.loads(before)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ['results.json']


def test_metrics_onto_a_real_full_disk_keeps_the_previous_file(tmp_path, pairs, capsys,
                                                               small_disk):
    disk = small_disk('64k')
    out = disk / 'results.json'
    assert _metrics(tmp_path, pairs, out, '--names', 'EN') == 0
    before = out.read_bytes()
    handle = os.open(disk / 'filler', os.O_WRONLY | os.O_CREAT)
    try:  # fill what is left
        while os.write(handle, b'\0' * 1024):
            pass
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(handle)
    assert _metrics(tmp_path, pairs, out) == 2  # every metric: a larger file than before
    line = one_line(capsys, 'metrics')
    assert 'No space left on device' in line, line
    assert out.read_bytes() == before
    assert sorted(p.name for p in disk.iterdir()) == ['filler', 'results.json']


def test_a_killed_runs_scratch_is_swept_by_the_next_run(tmp_path):
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    pid = int(gone.stdout)
    out = tmp_path / 'out'
    out.mkdir()
    left = out / f'.sgdfuse-evaluate-new-{pid}-abc'
    left.mkdir()
    (left / 'partial.png').write_bytes(b'x')
    beside = tmp_path / f'.bag.sgdfuse-new-{pid}-abc'
    beside.mkdir()
    mine = out / f'.sgdfuse-evaluate-new-{os.getpid()}-live'
    mine.mkdir()
    files = ReplacedFiles(out, ('a',), 'evaluate')
    whole = ReplacedPath(tmp_path / 'bag')
    assert not left.exists() and not beside.exists() and mine.exists()
    (files.path / 'a').write_text('new')
    whole.path.write_text('new')
    files.commit()
    whole.commit()
    assert (out / 'a').read_text() == 'new' and (tmp_path / 'bag').read_text() == 'new'
    assert not files.path.exists() and not whole.scratch


# --- class 8: --report equal to --out; ONNX scratch folders -----------------------------------


def test_replay_report_overlapping_the_output_bag_is_refused(tmp_path, capsys):
    bag = make_bag(tmp_path, 'B')
    out = tmp_path / 'fused'
    for report in (out, out / 'report', tmp_path):
        assert cli(['replay', str(bag), '--out', str(out), '--report', str(report), '--quiet',
                    *CLASSICAL]) == 2
        line = one_line(capsys, 'replay')
        assert 'the two outputs must be apart' in line or 'the input IN_BAG' in line, line
        assert not out.exists()
    report = tmp_path / 'r'
    assert cli(['replay', str(bag), '--out', str(out), '--report', str(report), '--quiet',
                *CLASSICAL]) == 0
    assert cli(['replay', str(bag), '--out', str(out), '--report', str(report), '--overwrite',
                '--quiet', *CLASSICAL]) == 0
    assert (report / 'report.json').is_file() and (out / 'metadata.yaml').is_file()


ONNX_RUN = """
import sys
from sgdfuse_ros.config import load_config
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
pipeline = FusionPipeline(load_config(overrides={'backend': 'onnx', 'refiner.steps': 1,
                                                 'threads': 1}))
print('ready', flush=True)
if sys.argv[1] == 'wait':
    sys.stdin.read()
pipeline.close()
"""


def onnx_folders(temp: Path) -> list:
    return sorted(p.name for p in temp.iterdir() if p.name.startswith('sgdfuse_onnx'))


def test_killed_onnx_runs_leave_no_folders_in_the_temp_directory(tmp_path):
    pytest.importorskip('onnxruntime')
    temp = tmp_path / 'tmp'
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, '-c', ONNX_RUN, 'wait'], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        root = temp / f'sgdfuse_onnx-{os.getuid()}'
        assert onnx_folders(temp) == [root.name]  # one folder for the user
        held = list(root.iterdir())  # one per ONNX stage, named by the process
        assert held and all(p.name.startswith(f'{proc.pid}-') for p in held)
        assert {q.name for p in held for q in p.iterdir()} == {'first_stage.onnx',
                                                               'refiner.onnx'}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert all(p.exists() for p in held)  # a SIGKILL cannot be handled ...
    done = subprocess.run([sys.executable, '-c', ONNX_RUN, 'go'], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # ... the next run sweeps it, and cleans its own
    assert onnx_folders(temp) == [root.name]
    assert list(root.iterdir()) == []
