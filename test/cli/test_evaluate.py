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

import json

import cv2
import pytest

from sgdfuse_ros.cli import main
from sgdfuse_ros.eval.metrics import fusion_metrics, read_gray
from sgdfuse_ros.eval.synthetic_pairs import write_sample

CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']


def test_evaluate_on_real_pairs(roadscene, tmp_path, capsys):
    out = tmp_path / 'eval'
    code = main(['evaluate', '--data', str(roadscene), '--subset', 'test', '--limit', '3',
                 '--out', str(out), '--quiet', *CLASSICAL])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / 'report.md') in printed and '| EN |' in printed
    report = json.loads((out / 'metrics.json').read_text())
    assert report['pairs'] == 3 and set(report['per_image']) == {
        'FLIR_00211', 'FLIR_00977', 'FLIR_01130'}
    # metrics in the report are those of the written PNGs against the sources
    name = 'FLIR_00211'
    again = fusion_metrics(read_gray(out / 'fused' / f'{name}.png'),
                           read_gray(roadscene / 'ir' / f'{name}.jpg'),
                           read_gray(roadscene / 'vis' / f'{name}.jpg'))
    for metric, value in again.items():
        assert report['per_image'][name][metric] == pytest.approx(value, rel=1e-9)
    fused = cv2.imread(str(out / 'fused' / f'{name}.png'))
    source = cv2.imread(str(roadscene / 'vis' / f'{name}.jpg'))
    assert fused.shape == source.shape
    sheet = cv2.imread(str(out / 'contact_sheet.png'))
    assert sheet is not None and sheet.shape[0] > 3 * 200
    csv_lines = (out / 'metrics.csv').read_text().splitlines()
    assert csv_lines[0].startswith('name,EN') and csv_lines[-1].startswith('mean,')
    assert '![contact sheet](contact_sheet.png)' in (out / 'report.md').read_text()


def _bad(args, capsys):
    code = main(['evaluate', *args, '--quiet', *CLASSICAL])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith('sgdfuse evaluate: error:')
    return err


def _failed_pair(sample, out, capsys):
    """Evaluate with one bad pair: exit 0, the other pairs fused, the bad one's reason."""
    code = main(['evaluate', '--ir', str(sample / 'ir'), '--vis', str(sample / 'vis'), '--out',
                 str(out), '--quiet', *CLASSICAL])
    capsys.readouterr()
    assert code == 0
    report = json.loads((out / 'metrics.json').read_text())
    assert (report['pairs'], report['fused'], report['failed']) == (3, 2, 1)
    assert sorted(p.name for p in (out / 'fused').iterdir()) == ['sample_000.png',
                                                                 'sample_001.png']
    reason = report['failures']['extra']
    assert len(reason.splitlines()) == 1
    return reason


def test_evaluate_bad_inputs(tmp_path, capsys):
    sample = tmp_path / 's'
    write_sample(sample, n=2, size=(96, 64))
    out = ['--out', str(tmp_path / 'o')]
    assert 'folder not found' in _bad(['--ir', str(tmp_path / 'nope'), '--vis',
                                       str(sample / 'vis'), *out], capsys)
    (sample / 'ir' / 'extra.png').write_bytes((sample / 'ir' / 'sample_000.png').read_bytes())
    assert 'unpaired' in _bad(['--ir', str(sample / 'ir'), '--vis', str(sample / 'vis'), *out],
                              capsys)
    # a pair that cannot be read or fused costs only itself (issue #14, rule 1)
    (sample / 'vis' / 'extra.png').write_bytes(b'this is not a png')
    assert 'cannot decode' in _failed_pair(sample, tmp_path / 'o', capsys)
    big = cv2.imread(str(sample / 'vis' / 'sample_000.png'))
    cv2.imwrite(str(sample / 'vis' / 'extra.png'), cv2.resize(big, (100, 70)))
    assert 'differ in size' in _failed_pair(sample, tmp_path / 'o', capsys)
    assert "no list 'val'" in _bad(['--data', str(sample), '--subset', 'val', *out], capsys)
    assert 'unknown parameter' in _bad(['--data', str(sample), '--set', 'foo=1', *out], capsys)


def test_size_mismatch_allowed_with_registration(tmp_path, capsys):
    sample = tmp_path / 's'
    write_sample(sample, n=1, size=(96, 64))
    ir = cv2.imread(str(sample / 'ir' / 'sample_000.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(sample / 'ir' / 'sample_000.png'), cv2.resize(ir, (48, 32)))
    code = main(['evaluate', '--data', str(sample), '--out', str(tmp_path / 'o'), '--quiet',
                 '--set', 'registration.resize_mismatched=true', *CLASSICAL])
    assert code == 0
    assert cv2.imread(str(tmp_path / 'o' / 'fused' / 'sample_000.png')).shape == (64, 96, 3)
