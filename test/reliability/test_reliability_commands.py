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
Issue #14: no user action loses work in the offline commands (run in-process).

Each test asserts what a user sees: the exit status, the one line on stderr, the files left
behind and the books of the report. The signal and disk-full cases run the command as a
subprocess or on a small tmpfs: test_reliability_signals.py, test_reliability_disk.py.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
import tracemalloc

from bag_support import read_bag
import cv2
import numpy as np
import pytest
from sgdfuse_ros import writing
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.cli.live import newest_stamps, PairingWatch
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.eval.datasets import list_pairs
from sgdfuse_ros.eval.evaluation import run_evaluation
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from sgdfuse_ros.fusion.weights import load_weights, save_weights
from test_reliability_support import (balanced, EchoPipeline, FakeClock, image, make_core,
                                      one_line, scene)

CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
CLASSICAL_CONFIG = {'first_stage.type': 'laplacian', 'refiner.steps': 0}


def error_line(capsys, command: str) -> str:
    """Return the one line a refused command printed on stderr."""
    err = capsys.readouterr().err.strip()
    assert err, 'nothing on stderr'
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f'sgdfuse {command}: '), lines[0]
    return one_line(lines[0])


def sample(tmp_path, n=3, size=(96, 64), name='s'):
    ir, vis = write_sample(tmp_path / name, n=n, size=size)
    return Path(ir), Path(vis)


def evaluate(ir, vis, out, *extra):
    return cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *CLASSICAL, *extra])


def books(report: dict) -> None:
    assert report['fused'] + report['failed'] + report['not_reached'] == report['pairs']


# --- rule 1: a bad frame costs only itself --------------------------------------------------


def test_evaluate_counts_a_bad_frame_and_goes_on(tmp_path, capsys):
    ir, vis = sample(tmp_path)
    # truncated thermal file, a pair too small for SSIM, a pair of two sizes (a stage's error)
    data = (ir / 'sample_001.png').read_bytes()
    (ir / 'cut.png').write_bytes(data[:len(data) // 2])
    (vis / 'cut.png').write_bytes((vis / 'sample_001.png').read_bytes())
    cv2.imwrite(str(ir / 'tiny.png'), np.full((5, 40), 90, np.uint8))
    cv2.imwrite(str(vis / 'tiny.png'), np.full((5, 40, 3), 60, np.uint8))
    cv2.imwrite(str(ir / 'sizes.png'), np.full((30, 40), 90, np.uint8))
    cv2.imwrite(str(vis / 'sizes.png'), np.full((64, 96, 3), 60, np.uint8))
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('evaluate: 2 pair(s) failed'), err
    report = json.loads((out / 'metrics.json').read_text())
    books(report)
    assert (report['pairs'], report['fused'], report['failed']) == (6, 4, 2)
    assert 'truncated' in report['failures']['cut']
    assert 'differ in size' in report['failures']['sizes']
    for reason in report['failures'].values():
        assert '\n' not in reason and 'Traceback' not in reason
    # the tiny frame is fused and scored; only what cannot be computed on it is missing
    tiny = report['per_image']['tiny']
    assert tiny['SSIM'] is None and tiny['EN'] is not None
    assert 'at least 7x7' in report['metrics_missing']['tiny']['SSIM']
    assert report['scored']['SSIM'] == 3 and report['scored']['EN'] == 4
    assert report['mean']['SSIM'] == pytest.approx(np.mean(
        [v['SSIM'] for k, v in report['per_image'].items() if k != 'tiny']))
    assert sorted(p.stem for p in (out / 'fused').iterdir()) == [
        'sample_000', 'sample_001', 'sample_002', 'tiny']
    text = (out / 'report.md').read_text()
    assert '| cut |' in text and 'SSIM on 1' in text


def test_replay_scores_what_it_can_on_a_frame_too_small_for_a_metric(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=3, size=(40, 6))
    bag = tmp_path / 'bag'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(bag),
                '--quiet']) == 0
    assert cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--quiet', *CLASSICAL]) == 0
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['pairs']['fused'] == 3
    metrics = report['metrics']
    assert metrics['frames_scored'] == 3 and metrics['missing']['SSIM'] == 3
    assert metrics['mean']['SSIM'] is None and metrics['mean']['EN'] is not None
    assert 'at least 7x7' in metrics['missing_examples'][0]


# --- rule 3: a failed write (injected ENOSPC) -------------------------------------------------


def test_evaluate_never_exits_0_after_a_failed_write(tmp_path, capsys, monkeypatch):
    ir, vis = sample(tmp_path, n=4)
    real, calls = writing.write_bytes, []

    def full_disk(path, data):
        calls.append(Path(path).name)
        if Path(path).name == 'sample_002.png':
            raise OSError(errno.ENOSPC, 'No space left on device', str(path))
        real(path, data)

    monkeypatch.setattr(writing, 'write_bytes', full_disk)
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out) == 2
    line = error_line(capsys, 'evaluate')
    assert 'No space left on device (ENOSPC)' in line and 'sample_002.png' in line
    assert '2 of 4 pairs fused' in line
    report = json.loads((out / 'metrics.json').read_text())
    books(report)
    assert (report['fused'], report['not_reached']) == (2, 2)
    assert 'ENOSPC' in report['write_error']
    assert sorted(p.name for p in (out / 'fused').iterdir()) == ['sample_000.png',
                                                                 'sample_001.png']
    assert 'Stopped by a failed write' in (out / 'report.md').read_text()


# --- rule 4: everything checked up front ------------------------------------------------------


def _up_front_cases(tmp_path):
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    (tmp_path / 'with_fused_file').mkdir()
    (tmp_path / 'with_fused_file' / 'fused').write_text('x')
    (tmp_path / 'a_folder').mkdir()
    ir, vis = sample(tmp_path, n=1)
    src = ['--ir', str(ir), '--vis', str(vis)]
    return {
        'evaluate --out is a file': (['evaluate', *src, '--out', str(a_file)], 'is a file'),
        'evaluate --out below a file': (['evaluate', *src, '--out', str(a_file / 'x')],
                                        'is a file, not a folder'),
        'evaluate --out/fused is a file': (['evaluate', *src, '--out',
                                            str(tmp_path / 'with_fused_file')],
                                           'writes a folder there'),
        'make-bag --out below a file': (['make-bag', *src, '--out', str(a_file / 'bag')],
                                        'is a file, not a folder'),
        'metrics --out is a folder': (['metrics', str(tmp_path), *src, '--out',
                                       str(tmp_path / 'a_folder')], 'is a folder'),
        'live --stats-json is a folder': (['live', '--stats-json', str(tmp_path / 'a_folder')],
                                          'is a folder'),
        'export --out is a file': (['export', '--out', str(a_file)], 'is a file'),
        'train --out is a folder': (['train', 'first-stage', '--data', str(tmp_path), '--out',
                                     str(tmp_path / 'a_folder')], 'is a folder'),
    }


UP_FRONT = ['evaluate --out is a file', 'evaluate --out below a file',
            'evaluate --out/fused is a file', 'make-bag --out below a file',
            'metrics --out is a folder', 'live --stats-json is a folder',
            'export --out is a file', 'train --out is a folder']


@pytest.mark.parametrize('case', UP_FRONT)
def test_output_paths_are_checked_before_any_work(tmp_path, capsys, case):
    argv, needle = _up_front_cases(tmp_path)[case]
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli(argv) == 2
    assert needle in error_line(capsys, argv[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_replay_report_folder_is_checked_before_any_work(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=2)
    bag = tmp_path / 'bag'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(bag),
                '--quiet']) == 0
    (tmp_path / 'a_file').write_text('x')
    assert cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--report',
                str(tmp_path / 'a_file'), '--quiet']) == 2
    assert 'is a file' in error_line(capsys, 'replay')
    assert not (tmp_path / 'out').exists()


def test_a_read_only_place_is_refused_up_front(tmp_path, capsys, read_only_dir):
    ir, vis = sample(tmp_path, n=1)
    assert evaluate(ir, vis, read_only_dir / 'out') == 2
    assert 'cannot write in' in error_line(capsys, 'evaluate')


PARSE_TIME = {
    'evaluate --limit -1': (['evaluate', '--limit', '-1', '--out', 'x'], '--limit'),
    'evaluate --contact-rows -2': (['evaluate', '--contact-rows', '-2', '--out', 'x'],
                                   '--contact-rows'),
    'make-bag --rate 0': (['make-bag', '--rate', '0', '--out', 'x'], '--rate'),
    'make-bag --rate nan': (['make-bag', '--rate', 'nan', '--out', 'x'], '--rate'),
    'make-bag --repeat 0': (['make-bag', '--repeat', '0', '--out', 'x'], '--repeat'),
    'make-bag --jpeg-quality 101': (['make-bag', '--jpeg-quality', '101', '--out', 'x'],
                                    '--jpeg-quality'),
    'train --batch -3': (['train', 'first-stage', '--batch', '-3'], '--batch'),
    'train --crop 100': (['train', 'first-stage', '--crop', '100'], 'multiple of 8'),
    'train --loss-weights unknown key': (['train', 'first-stage', '--loss-weights',
                                          '{"sharpness": 1}'], 'unknown key(s) sharpness'),
    'train --loss-weights negative': (['train', 'first-stage', '--loss-weights',
                                       '{"ssim": -1}'], '>= 0'),
    'live --thermal-topic 1cam': (['live', '--thermal-topic', '/1cam/image'],
                                  'not a valid ROS 2 topic name'),
    'live --rgb-topic a//b': (['live', '--rgb-topic', 'a//b'], 'not a valid ROS 2 topic name'),
    'live --domain-id 300': (['live', '--domain-id', '300'], '--domain-id'),
    'replay --rgb-topic trailing /': (['replay', 'bag', '--out', 'x', '--rgb-topic', '/rgb/'],
                                      'not a valid ROS 2 topic name'),
}


@pytest.mark.parametrize('case', sorted(PARSE_TIME))
def test_impossible_option_values_are_refused_at_parse_time(capsys, case):
    argv, needle = PARSE_TIME[case]
    assert cli(argv) == 2
    line = error_line(capsys, argv[0])
    assert 'error: argument' in line and needle in line, line


# --- rule 5: one reading of an input file -----------------------------------------------------


def test_evaluate_reads_each_file_once_and_scores_what_it_fused(tmp_path, capsys, monkeypatch):
    ir, vis = sample(tmp_path, n=2)
    reads = {}
    real_read = Path.read_bytes

    def counting(self):
        reads[self.name + '@' + self.parent.name] = reads.get(self.name + '@' +
                                                              self.parent.name, 0) + 1
        return real_read(self)

    def no_imread(*_):
        raise AssertionError('a source file was read a second time with cv2.imread')

    monkeypatch.setattr(Path, 'read_bytes', counting)
    monkeypatch.setattr(cv2, 'imread', no_imread)
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out) == 0
    sources = {k: v for k, v in reads.items() if k.endswith(('@ir', '@vis'))}
    assert sources == {'sample_000.png@ir': 1, 'sample_001.png@ir': 1,
                       'sample_000.png@vis': 1, 'sample_001.png@vis': 1}
    monkeypatch.undo()
    # the numbers are those of the files on disk, read as the reference evaluator reads them
    from sgdfuse_ros.eval.metrics import fusion_metrics, read_gray
    report = json.loads((out / 'metrics.json').read_text())
    again = fusion_metrics(read_gray(out / 'fused' / 'sample_000.png'),
                           read_gray(ir / 'sample_000.png'), read_gray(vis / 'sample_000.png'))
    for name, value in again.items():
        assert report['per_image']['sample_000'][name] == pytest.approx(value, rel=1e-9)


def test_a_truncated_jpeg_is_one_failed_pair_not_fused_then_unreadable(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=2)
    ok, buf = cv2.imencode('.jpg', cv2.imread(str(vis / 'sample_001.png')))
    (vis / 'sample_001.png').unlink()
    (vis / 'sample_001.jpg').write_bytes(buf.tobytes()[:len(buf) * 2 // 3])  # cut download
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out) == 0
    report = json.loads((out / 'metrics.json').read_text())
    assert report['failures'] == {'sample_001': f"{vis / 'sample_001.jpg'} is truncated "
                                                '(its end marker is missing)'}
    assert not (out / 'fused' / 'sample_001.png').exists()
    assert list(report['per_image']) == ['sample_000']


def test_make_bag_keeps_16_bit_thermal_value_for_value(tmp_path, capsys):
    ir, vis = tmp_path / 'ir', tmp_path / 'vis'
    ir.mkdir()
    vis.mkdir()
    counts = (np.arange(48 * 64, dtype=np.uint32) * 21 % 65536).astype(np.uint16).reshape(48, 64)
    cv2.imwrite(str(ir / 'a.png'), counts)
    cv2.imwrite(str(vis / 'a.png'), np.full((48, 64, 3), 80, np.uint8))
    bag = tmp_path / 'bag'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(bag),
                '--quiet']) == 0
    messages, _ = read_bag(bag)
    msg = messages['/thermal/image_raw'][0][1]
    assert msg.encoding == 'mono16' and msg.is_bigendian == 0
    assert np.array_equal(np.frombuffer(bytes(msg.data), '<u2').reshape(48, 64), counts)
    # mono8 cannot hold it: refused, not squeezed
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(tmp_path / 'b8'),
                '--thermal-encoding', 'mono8', '--quiet']) == 2
    assert 'would lose its values' in error_line(capsys, 'make-bag')
    assert not (tmp_path / 'b8').exists()
    # a float thermal image is refused too
    cv2.imwrite(str(ir / 'a.tiff'), counts.astype(np.float32))
    (ir / 'a.png').unlink()
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(tmp_path / 'bf'),
                '--quiet']) == 2
    assert 'float32' in error_line(capsys, 'make-bag')


# --- rule 6: memory does not grow with the dataset --------------------------------------------


def _many(tmp_path, n):
    ir, vis = sample(tmp_path, n=2, size=(256, 192), name='base')
    for folder in ('ir', 'vis'):
        target = tmp_path / f'many{n}' / folder
        target.mkdir(parents=True)
        for i in range(n):
            source = (ir if folder == 'ir' else vis) / f'sample_00{i % 2}.png'
            (target / f'p{i:03d}.png').write_bytes(source.read_bytes())
    return list_pairs(tmp_path / f'many{n}' / 'ir', tmp_path / f'many{n}' / 'vis')


def test_evaluate_streams_pairs_peak_memory_independent_of_their_number(tmp_path):
    config = load_config(overrides=dict(CLASSICAL_CONFIG, **{
        'output.width': 0, 'output.height': 0, 'prior.every_frame': True}))
    peaks = {}
    for n in (4, 24):
        pairs = _many(tmp_path / str(n), n)
        tracemalloc.start()
        try:
            report = run_evaluation(pairs, tmp_path / f'out{n}', config, contact_rows=0)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report['fused'] == n
    # loading all pairs first (the old way) held 24 x 256x192 pairs: > 3x the 4-pair peak
    assert peaks[24] < 1.3 * peaks[4], peaks


def test_image_size_is_checked_from_the_header_before_decoding(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=1)
    header = (b'\x89PNG\r\n\x1a\n' + (13).to_bytes(4, 'big') + b'IHDR'
              + (100000).to_bytes(4, 'big') + (100000).to_bytes(4, 'big') + b'\x08\x00\x00\x00'
              + b'\x00' * 4 + b'\x00' * 64 + b'IEND\xaeB`\x82')
    (ir / 'huge.png').write_bytes(header)
    (vis / 'huge.png').write_bytes((vis / 'sample_000.png').read_bytes())
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out) == 0
    report = json.loads((out / 'metrics.json').read_text())
    assert 'from its header' in report['failures']['huge']
    assert '100000x100000' in report['failures']['huge']


# --- rule 7: comparisons are like for like -----------------------------------------------------


def test_metrics_on_several_folders_scores_the_same_images(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=4)
    a, b = tmp_path / 'A', tmp_path / 'B'
    a.mkdir()
    b.mkdir()
    for i in (0, 1, 2):
        (a / f'sample_00{i}.png').write_bytes((vis / f'sample_00{i}.png').read_bytes())
    for i in (1, 2, 3):
        (b / f'sample_00{i}.png').write_bytes((ir / f'sample_00{i}.png').read_bytes())
    out = tmp_path / 'm.json'
    assert cli(['metrics', str(a), str(b), '--ir', str(ir), '--vis', str(vis), '--out',
                str(out)]) == 0
    captured = capsys.readouterr()
    assert 'scoring the 2 image(s) common to all folders; left out: 1 of A (sample_000); ' \
           '1 of B (sample_003)' in captured.err
    doc = json.loads(out.read_text())
    for label in ('A', 'B'):
        assert sorted(doc['results'][label]['per_image']) == ['sample_001', 'sample_002']
    # nothing in common: refused
    for p in b.iterdir():
        p.rename(p.with_name('other_' + p.name))
    assert cli(['metrics', str(a), str(b), '--ir', str(ir), '--vis', str(vis)]) == 2
    assert 'no image name in common' in error_line(capsys, 'metrics')


# --- rule 8: weights are checked for content ---------------------------------------------------


def test_weights_with_nan_or_absurd_sizes_are_refused_before_building(tmp_path, capsys):
    import torch
    from sgdfuse_ros.fusion.network import FirstStageNet
    shipped = torch.load(Path(__file__).resolve().parents[2] / 'models' / 'first_stage.pt',
                         map_location='cpu', weights_only=True)
    model = FirstStageNet.from_arch(shipped['arch'])
    model.load_state_dict(shipped['state_dict'])
    with torch.no_grad():
        next(model.parameters())[0].fill_(float('nan'))
    save_weights(tmp_path / 'nan.pt', 'first_stage', shipped['arch'], model)
    with pytest.raises(ConfigError, match='NaN or infinite'):
        load_weights(tmp_path / 'nan.pt', 'first_stage', FirstStageNet.from_arch)
    huge = dict(shipped['arch'], c1=1_000_000)
    torch.save(dict(shipped, arch=huge), tmp_path / 'huge.pt')

    def must_not_build(arch):
        raise AssertionError('built a network from an absurd architecture')

    with pytest.raises(ConfigError, match='c1=1000000 is outside 0..1024'):
        load_weights(tmp_path / 'huge.pt', 'first_stage', must_not_build)
    ir, vis = sample(tmp_path, n=1)
    for name, needle in (('nan.pt', 'NaN or infinite'), ('huge.pt', 'c1=1000000')):
        assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out',
                    str(tmp_path / f'out_{name}'), '--quiet', '--set', 'refiner.steps=0', '--set',
                    f'first_stage.weights={tmp_path / name}']) == 2
        assert needle in error_line(capsys, 'evaluate')


# --- rule 9: smaller ---------------------------------------------------------------------------


def test_a_binary_or_non_utf8_config_is_one_line(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=1)
    (tmp_path / 'bin.yaml').write_bytes(b'\x7fELF\x02\x01\x01\x00\x00' + bytes(range(256)))
    (tmp_path / 'latin1.yaml').write_bytes('/**:\n  ros__parameters:\n    device: caf\xe9\n'
                                           .encode('latin-1'))
    for name, needle in (('bin.yaml', 'is a binary file'), ('latin1.yaml', 'not UTF-8 text')):
        assert evaluate(ir, vis, tmp_path / 'o', '--config', str(tmp_path / name)) == 2
        assert needle in error_line(capsys, 'evaluate')


def test_a_string_for_an_integer_is_refused_as_ros_refuses_it(tmp_path, capsys):
    with pytest.raises(ConfigError, match="sync.queue_size: expected int, got '5'"):
        load_config(overrides={'sync.queue_size': '5'})
    with pytest.raises(ConfigError, match="sync.slop: expected float, got '0.1'"):
        load_config(overrides={'sync.slop': '0.1'})
    (tmp_path / 'c.yaml').write_text('/**:\n  ros__parameters:\n    sync:\n'
                                     "      queue_size: '5'\n")
    ir, vis = sample(tmp_path, n=1)
    assert evaluate(ir, vis, tmp_path / 'o', '--config', str(tmp_path / 'c.yaml')) == 2
    assert "expected int, got '5'" in error_line(capsys, 'evaluate')


def test_live_warns_once_loudly_when_no_pair_forms_and_says_by_how_much():
    thermal, visible, _ = scene()
    clock = FakeClock()
    core, t = make_core(CLASSICAL_CONFIG, factory=EchoPipeline, clock=clock)
    watch = PairingWatch(after_s=5.0, clock=clock)
    lines = []
    for i in range(80):  # 8 s; the thermal camera stamps with a clock 1000 s ahead
        t.publish('thermal/image_raw', image(thermal, 1000.0 + i / 10, 'mono16'))
        t.publish('rgb/image_raw', image(visible, i / 10, 'bgr8'))
        clock.advance(0.1)
        line = watch.check(balanced(core), newest_stamps(core), 0.05)
        if line:
            lines.append(line)
    assert len(lines) == 1, lines
    assert 'WARNING' in lines[0] and 'no thermal/RGB pair has formed for 5 s' in lines[0]
    assert 'differ by 1000.000 s' in lines[0] and 'sync.slop is 0.05 s' in lines[0]
    # once pairs form, it is quiet (and re-armed)
    for i in range(10):
        t.publish('thermal/image_raw', image(thermal, 2000.0 + i / 10, 'mono16'))
        t.publish('rgb/image_raw', image(visible, 2000.0 + i / 10, 'bgr8'))
        clock.advance(0.1)
        assert watch.check(balanced(core), newest_stamps(core), 0.05) is None
    assert not watch.warned
    core.shutdown()


def test_duplicate_stems_are_reported(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=2)
    cv2.imwrite(str(ir / 'sample_000.jpg'), cv2.imread(str(ir / 'sample_000.png')))
    assert evaluate(ir, vis, tmp_path / 'o') == 2
    line = error_line(capsys, 'evaluate')
    assert 'sample_000.jpg, sample_000.png' in line and str(ir) in line
    fused = tmp_path / 'fused'
    fused.mkdir()
    for name in ('a.png', 'a.jpg'):
        cv2.imwrite(str(fused / name), np.zeros((8, 8, 3), np.uint8))
    assert cli(['metrics', str(fused), '--ir', str(ir), '--vis', str(vis)]) == 2
    assert 'a.jpg, a.png' in error_line(capsys, 'metrics')


def test_a_rerun_into_an_existing_out_replaces_the_previous_run(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=3)
    out = tmp_path / 'o'
    assert evaluate(ir, vis, out) == 0
    assert len(list((out / 'fused').iterdir())) == 3
    capsys.readouterr()
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--limit',
                '1', *CLASSICAL]) == 0
    assert f'evaluate: replaced the previous run in {out}' in capsys.readouterr().err
    assert [p.name for p in (out / 'fused').iterdir()] == ['sample_000.png']
    report = json.loads((out / 'metrics.json').read_text())
    assert report['pairs'] == 1 and list(report['per_image']) == ['sample_000']
    assert (out / 'metrics.csv').read_text().count('\n') == 3  # header, one pair, mean
    # a fused/ folder that evaluate did not write is never deleted
    other = tmp_path / 'other'
    (other / 'fused').mkdir(parents=True)
    (other / 'fused' / 'mine.png').write_bytes(b'x')
    assert evaluate(ir, vis, other) == 2
    assert 'did not write' in error_line(capsys, 'evaluate')
    assert (other / 'fused' / 'mine.png').read_bytes() == b'x'
