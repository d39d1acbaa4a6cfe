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
Tests of sgdfuse_ros.eval.metrics and the ``sgdfuse metrics`` subcommand.

Reference values come from ``reference_metrics/values.json`` next to the RoadScene data:
the data folder is ``$SGDFUSE_DATA`` (the roadscene folder), else
``<repo>/../shared/data/roadscene``; tests that need it are skipped when it is absent.
"""

import argparse
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgdfuse_ros.cli import metrics as metrics_cli
from sgdfuse_ros.errors import InputError, SgdfuseError
from sgdfuse_ros.eval import metrics as M
from sgdfuse_ros.eval import scoring as S

REPO = Path(__file__).resolve().parents[2]


def _data_dir():
    cands = []
    if os.environ.get('SGDFUSE_DATA'):
        cands.append(Path(os.environ['SGDFUSE_DATA']))
    cands.append(REPO.parent / 'shared' / 'data' / 'roadscene')
    for c in cands:
        if ((c / 'ir').is_dir() and (c / 'vis').is_dir()
                and (c.parent / 'reference_metrics' / 'values.json').is_file()):
            return c
    return None


DATA = _data_dir()
needs_data = pytest.mark.skipif(
    DATA is None,
    reason='RoadScene data with ../reference_metrics/values.json not found '
    '(set SGDFUSE_DATA to the roadscene folder)',
)


def _reference():
    return json.loads((DATA.parent / 'reference_metrics' / 'values.json').read_text())['values']


def _rel_tol(name):
    # From values.json "about": 1e-6 relative, SSIM (data_range=2) 1e-3.
    return 1e-3 if name == 'SSIM' else 1e-6


def _texture(seed, shape=(64, 80)):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, shape).astype(np.uint8)
    return np.round(cv2.GaussianBlur(img, (5, 5), 1.2).astype(np.float64))


# --------------------------------------------------------------------------- API


def test_public_constants():
    assert M.METRIC_NAMES == ('EN', 'SD', 'SF', 'AG', 'MI', 'MI_bits', 'SCD', 'VIF', 'Qabf',
                              'SSIM', 'SSIM255', 'PSNR', 'CC')
    assert M.HEADLINE_METRICS == ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM')
    assert set(M.HIGHER_IS_BETTER) == set(M.METRIC_NAMES)
    assert all(M.HIGHER_IS_BETTER.values())
    assert issubclass(InputError, SgdfuseError)


def test_to_gray_matches_reference_reading():
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (17, 23, 3)).astype(np.uint8)
    want = np.round(cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY))
    got = M.to_gray(bgr)
    assert got.dtype == np.float64 and got.shape == (17, 23)
    np.testing.assert_array_equal(got, want)
    gray = bgr[:, :, 0]
    np.testing.assert_array_equal(M.to_gray(gray), gray.astype(np.float64))
    # a gray image read in colour (3 equal channels) gives back the same gray
    np.testing.assert_array_equal(M.to_gray(np.dstack([gray] * 3)), gray.astype(np.float64))
    with pytest.raises(InputError):
        M.to_gray(np.zeros((4, 4, 2), np.uint8))


def test_read_gray(tmp_path):
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 256, (12, 10, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'x.png'), bgr)
    np.testing.assert_array_equal(M.read_gray(tmp_path / 'x.png'), M.to_gray(bgr))
    with pytest.raises(InputError, match='not found'):
        M.read_gray(tmp_path / 'missing.png')
    (tmp_path / 'bad.png').write_text('not an image')
    with pytest.raises(InputError) as err:
        M.read_gray(tmp_path / 'bad.png')
    assert '\n' not in str(err.value)


def test_shape_mismatch_and_bad_input_raise():
    a = _texture(0)
    with pytest.raises(InputError, match='differ'):
        M.fusion_metrics(a, a, a[:, :-1])
    with pytest.raises(InputError):
        M.fusion_metrics(np.dstack([a] * 3), a, a)
    with pytest.raises(InputError, match='unknown metric'):
        M.fusion_metrics(a, a, a, names=('EN', 'FOO'))


def test_names_subset_and_order():
    f, a, b = _texture(0), _texture(1), _texture(2)
    full = M.fusion_metrics(f, a, b)
    assert tuple(full) == M.METRIC_NAMES
    part = M.fusion_metrics(f, a, b, names=('SSIM', 'EN'))
    assert list(part) == ['SSIM', 'EN']
    assert part == {'SSIM': full['SSIM'], 'EN': full['EN']}
    assert all(isinstance(v, float) for v in full.values())


# --------------------------------------------------------------------------- identities


def test_fused_equal_to_both_sources():
    a = _texture(3)
    m = M.fusion_metrics(a, a, a)
    assert m['SSIM255'] == pytest.approx(2.0, abs=1e-12)
    assert m['SSIM'] == pytest.approx(2.0, abs=1e-12)
    assert m['CC'] == pytest.approx(1.0, abs=1e-12)
    assert m['VIF'] == pytest.approx(2.0, abs=1e-6)
    # MI(X, X) is the entropy of X (EN is in bits, MI in nats)
    assert m['MI'] == pytest.approx(2.0 * m['EN'] * math.log(2.0), rel=1e-12)
    assert m['MI_bits'] == pytest.approx(2.0 * m['EN'], rel=1e-12)
    assert m['PSNR'] == math.inf
    # F - B is constant: its correlations count as 0
    assert m['SCD'] == 0.0
    # Qabf saturates below 1 by construction (0.9994 * 0.9879 / (1 + exp(-4.4)) at most)
    assert 0.9 < m['Qabf'] <= 0.9994 * 0.9879 / (1 + math.exp(-4.4)) + 1e-12


def test_fused_equal_to_one_source():
    a, b = _texture(4), _texture(5)
    m_a = M.fusion_metrics(a, a, b)
    m_b = M.fusion_metrics(b, a, b)
    # each is 1 (the identical pair) + ssim(a, b)
    assert m_a['SSIM255'] == pytest.approx(m_b['SSIM255'], abs=1e-12)
    assert 1.0 < m_a['SSIM255'] < 2.0
    h_a = M.fusion_metrics(a, a, a)['MI'] / 2
    h_b = M.fusion_metrics(b, b, b)['MI'] / 2
    assert m_a['MI'] - h_a == pytest.approx(m_b['MI'] - h_b, rel=1e-10)  # both are MI(a, b)
    mse = np.mean((a - b) ** 2) / 2
    assert m_a['PSNR'] == pytest.approx(10 * math.log10(a.max() ** 2 / mse))


def test_sources_are_symmetric():
    f, a, b = _texture(6), _texture(7), _texture(8)
    m1 = M.fusion_metrics(f, a, b)
    m2 = M.fusion_metrics(f, b, a)
    for k in M.METRIC_NAMES:
        assert m1[k] == pytest.approx(m2[k], rel=1e-12, abs=1e-12), k


def test_constant_images_are_defined():
    shape = (48, 64)
    f, a, b = (np.full(shape, v, np.float64) for v in (128.0, 100.0, 50.0))
    m = M.fusion_metrics(f, a, b)
    assert not any(math.isnan(v) for v in m.values())
    for k in ('EN', 'SD', 'SF', 'AG', 'MI', 'MI_bits', 'SCD', 'CC'):
        assert m[k] == 0.0, k
    # the Sobel filter zero-pads (as the reference), so constant images have border edges
    assert 0.0 < m['Qabf'] < 1.0
    assert m['VIF'] == 2.0  # vifp of a constant source is 1 (reference convention)
    c1 = 0.01 ** 2 * 255 ** 2
    want = sum((2 * 128 * s + c1) / (128 ** 2 + s ** 2 + c1) for s in (100, 50))
    assert m['SSIM255'] == pytest.approx(want, rel=1e-12)
    mse = ((128 - 100) ** 2 + (128 - 50) ** 2) / 2
    assert m['PSNR'] == pytest.approx(10 * math.log10(128 ** 2 / mse))
    # constant fused against textured sources
    m = M.fusion_metrics(f, _texture(9, shape), _texture(10, shape))
    assert not any(math.isnan(v) for v in m.values())
    assert m['VIF'] == 0.0 and m['MI'] == 0.0 and m['CC'] == 0.0
    # everything constant and equal
    m = M.fusion_metrics(a, a, a)
    assert m['PSNR'] == math.inf and m['SSIM'] == pytest.approx(2.0)
    # all-zero fused
    z = np.zeros(shape)
    m = M.fusion_metrics(z, a, b)
    assert m['PSNR'] == -math.inf and not any(math.isnan(v) for v in m.values())
    # all-zero sources have no gradient at all: Qabf is 0 by definition
    m = M.fusion_metrics(f, z, z)
    assert m['Qabf'] == 0.0 and not any(math.isnan(v) for v in m.values())


def test_small_images():
    f, a, b = _texture(11, (20, 30)), _texture(12, (20, 30)), _texture(13, (20, 30))
    m = M.fusion_metrics(f, a, b)  # smaller than the VIF pyramid: the scales that fit
    assert all(math.isfinite(v) for v in m.values())
    with pytest.raises(InputError, match='SSIM'):
        M.fusion_metrics(f[:5, :5], a[:5, :5], b[:5, :5])
    assert M.fusion_metrics(f[:5, :5], a[:5, :5], b[:5, :5], names=('EN', 'VIF'))['VIF'] == 2.0


# --------------------------------------------------------------------------- reference values


@needs_data
def test_reference_values():
    ref = _reference()
    worst = {}
    count = 0
    for fused_set, images in ref.items():
        for stem, want in images.items():
            f = M.read_gray(DATA.parent / 'reference_metrics' / fused_set / f'{stem}.png')
            a = M.read_gray(DATA / 'ir' / f'{stem}.jpg')
            b = M.read_gray(DATA / 'vis' / f'{stem}.jpg')
            got = M.fusion_metrics(f, a, b)
            assert set(want) == set(M.METRIC_NAMES)
            for k, v in want.items():
                err = abs(got[k] - v) / abs(v)
                worst[k] = max(worst.get(k, 0.0), err)
                assert err <= _rel_tol(k), f'{fused_set}/{stem} {k}: {got[k]!r} vs {v!r}'
            count += 1
    assert count == 10


# --------------------------------------------------------------------------- folders & table


def _write_set(root, stems, shape=(48, 64), vis_shape=None):
    for sub in ('ir', 'vis', 'fused'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(stems):
        ir, vis = _texture(20 + i, shape), _texture(40 + i, vis_shape or shape)
        cv2.imwrite(str(root / 'ir' / f'{s}.jpg'), ir.astype(np.uint8))
        cv2.imwrite(str(root / 'vis' / f'{s}.png'), np.dstack([vis] * 3).astype(np.uint8))
        fused = _texture(60 + i, shape)
        cv2.imwrite(str(root / 'fused' / f'{s}.png'), fused.astype(np.uint8))


def test_score_folders(tmp_path):
    _write_set(tmp_path, ['a', 'b'])
    per, mean = S.score_folders(tmp_path / 'fused', tmp_path / 'ir', tmp_path / 'vis')
    assert sorted(per) == ['a', 'b']
    for k in M.METRIC_NAMES:
        assert mean[k] == pytest.approx((per['a'][k] + per['b'][k]) / 2)
    direct = M.fusion_metrics(M.read_gray(tmp_path / 'fused' / 'a.png'),
                              M.read_gray(tmp_path / 'ir' / 'a.jpg'),
                              M.read_gray(tmp_path / 'vis' / 'a.png'))
    assert per['a'] == direct
    per, _ = S.score_folders(tmp_path / 'fused', tmp_path / 'ir', tmp_path / 'vis', ['b.jpg'])
    assert list(per) == ['b']
    with pytest.raises(InputError, match='lacks 1 of 2'):
        S.score_folders(tmp_path / 'fused', tmp_path / 'ir', tmp_path / 'vis', ['a', 'zz'])
    with pytest.raises(InputError, match='not found'):
        S.score_folders(tmp_path / 'nope', tmp_path / 'ir', tmp_path / 'vis')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='no images'):
        S.score_folders(tmp_path / 'empty', tmp_path / 'ir', tmp_path / 'vis')


def test_score_folders_size_mismatch(tmp_path):
    _write_set(tmp_path, ['a'], vis_shape=(40, 64))
    with pytest.raises(InputError, match='size mismatch for a'):
        S.score_folders(tmp_path / 'fused', tmp_path / 'ir', tmp_path / 'vis')


def test_format_table():
    rows = {'A': dict.fromkeys(M.METRIC_NAMES, 1.23456), 'B': {'EN': 7.0, 'SD': math.inf}}
    lines = S.format_table(rows).splitlines()
    assert lines[0] == '| Method | ' + ' | '.join(M.HEADLINE_METRICS) + ' |'
    assert len(lines) == 4
    assert lines[2].startswith('| A | 1.2346 |')
    assert lines[3].startswith('| B | 7.0000 | inf | - |')
    assert S.format_table(rows, ['EN']).splitlines()[3] == '| B | 7.0000 |'


# --------------------------------------------------------------------------- CLI


def _parse(argv):
    parser = argparse.ArgumentParser(prog='sgdfuse metrics')
    metrics_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_synthetic(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('SGDFUSE_DATA', raising=False)
    _write_set(tmp_path, ['a', 'b'])
    out = tmp_path / 'res' / 'r.json'
    args = _parse([str(tmp_path / 'fused'), str(tmp_path / 'fused'), '--ir', str(tmp_path / 'ir'),
                   '--vis', str(tmp_path / 'vis'), '--labels', 'x,y', '--names', 'EN,SSIM255',
                   '--out', str(out)])
    assert metrics_cli.main(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == '| Method | EN | SSIM255 |'
    assert table[2].startswith('| x |') and table[3].startswith('| y |')
    doc = json.loads(out.read_text())
    assert doc['metrics'] == ['EN', 'SSIM255']
    assert set(doc['results']) == {'x', 'y'}
    assert set(doc['results']['x']['per_image']) == {'a', 'b'}
    with pytest.raises(InputError, match='--ir'):
        metrics_cli.main(_parse([str(tmp_path / 'fused')]))
    with pytest.raises(InputError, match='label'):
        metrics_cli.main(_parse([str(tmp_path / 'fused'), '--ir', str(tmp_path / 'ir'), '--vis',
                                 str(tmp_path / 'vis'), '--labels', 'a,b']))
    with pytest.raises(SystemExit):  # refused at parse time
        _parse([str(tmp_path / 'fused'), '--ir', str(tmp_path / 'ir'), '--vis',
                str(tmp_path / 'vis'), '--names', 'EN,XX'])
    assert 'unknown metric(s) XX' in capsys.readouterr().err
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'test': ['a.jpg'], 'train': ['b.jpg']}))
    with pytest.raises(InputError, match="no list 'val'"):
        metrics_cli.main(_parse([str(tmp_path / 'fused'), '--ir', str(tmp_path / 'ir'), '--vis',
                                 str(tmp_path / 'vis'), '--split', str(split), '--subset', 'val']))


@needs_data
def test_cli_reference_images(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('SGDFUSE_DATA', raising=False)
    ref = _reference()
    stems = sorted(ref['fused_avg'])[:3]
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'three': [s + '.jpg' for s in stems]}))
    rdir = DATA.parent / 'reference_metrics'
    out = tmp_path / 'results.json'
    args = _parse([str(rdir / 'fused_avg'), str(rdir / 'fused_lp'), '--data', str(DATA),
                   '--split', str(split), '--subset', 'three', '--out', str(out)])
    assert metrics_cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '| Method | ' + ' | '.join(M.HEADLINE_METRICS) + ' |'
    assert [ln.split('|')[1].strip() for ln in lines[2:]] == ['fused_avg', 'fused_lp']
    doc = json.loads(out.read_text())
    for fused_set in ('fused_avg', 'fused_lp'):
        res = doc['results'][fused_set]
        assert sorted(res['per_image']) == stems
        for stem in stems:
            for k, v in ref[fused_set][stem].items():
                assert res['per_image'][stem][k] == pytest.approx(v, rel=_rel_tol(k)), \
                    (fused_set, stem, k)
        for k in M.METRIC_NAMES:
            want = np.mean([ref[fused_set][s][k] for s in stems])
            assert res['mean'][k] == pytest.approx(want, rel=_rel_tol(k))

    # --data from the environment applies the dataset's split ("test" by default), of which
    # the 5-image reference folders hold 5: those are scored, and how many is said (issue 24)
    monkeypatch.setenv('SGDFUSE_DATA', str(DATA))
    capsys.readouterr()
    assert metrics_cli.main(_parse([str(rdir / 'fused_avg')])) == 0
    said = capsys.readouterr().err
    listed = len(json.loads((DATA / 'split.json').read_text())['test'])
    assert f"scoring 5 of the {listed} images of the 'test' list present in every folder" in said
    assert f'5 image(s) per folder of the {listed} listed (split.json: test)' in said
    # none of the list present: refused, one line
    with pytest.raises(InputError, match='none of the') as err:
        metrics_cli.main(_parse([str(rdir / 'fused_avg'), '--subset', 'train']))
    assert '\n' not in str(err.value)
