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

"""A new user's first day with the CLI (issue 24): defaults, help and docs say what happens."""

import json
import logging
from pathlib import Path

from bag_support import read_bag
import pytest
from sgdfuse_ros import hardware
from sgdfuse_ros.cli import build_parser, COMMANDS, main
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.eval.datasets import choose_pairs, default_data_dir, time_of_day
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from sgdfuse_ros.parameters import ALL_PARAMS, render_yaml
import torch

REPO = Path(__file__).resolve().parents[2]
CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']


def command_help(name: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == 'command')
    return sub.choices[name].format_help()


def test_tests_and_benchmarks_find_the_data_beside_the_checkout(monkeypatch, tmp_path):
    """Without $SGDFUSE_DATA, ../shared/data/roadscene beside the checkout (where it exists)."""
    monkeypatch.delenv('SGDFUSE_DATA', raising=False)
    beside = REPO.parent / 'shared' / 'data' / 'roadscene'
    assert default_data_dir(beside_checkout=True) == (beside if beside.is_dir() else None)
    assert default_data_dir() is None  # the commands never look there
    monkeypatch.setenv('SGDFUSE_DATA', str(tmp_path))
    assert default_data_dir() == default_data_dir(beside_checkout=True) == tmp_path


@pytest.mark.parametrize('name', sorted(COMMANDS))
def test_help_names_no_developer_path(name):
    text = command_help(name)
    assert 'shared/data' not in text and '/work/' not in text and '../' not in text, text


def test_read_only_parameters_say_restart_in_the_file_and_the_docs():
    """The node declares them read-only: rclpy refuses them in every state, so: restart."""
    header = render_yaml().split('/**:')[0]
    assert '[read-only]' in header and 'restart the node' in header
    assert 'configured again' not in header and '[reconfigure]' not in render_yaml()
    shipped = (REPO / 'config' / 'fusion.yaml').read_text()
    assert shipped == render_yaml()
    ros_md = (REPO / 'docs' / 'ros.md').read_text()
    assert 'marked `[read-only]`' in ros_md and 'restart the node' in ros_md
    flagged = [p.name for p in ALL_PARAMS if p.read_only]
    assert 'device' in flagged and 'prior.source' in flagged
    for name in flagged:  # every one of them is flagged in the file users edit
        leaf = name.split('.')[-1]
        block = shipped.split(f' {leaf}:')[0].rsplit(':\n', 1)[-1]
        assert '[read-only]' in block, name


def _unsafe_pickle(path):
    torch.save({'kind': 'first_stage', 'arch': {}, 'state_dict': {}, 'x': Path('.')}, path)


@pytest.mark.parametrize('content, reason', [
    (b'', 'the file is empty (0 bytes)'),
    ('truncated', 'a damaged or truncated PyTorch archive'),
    (b'<html><body>404 Not Found</body></html>',
     "not a PyTorch weights file (it starts with b'<html><b')"),
    ('unsafe', 'holds a pickled Python object (pathlib.PosixPath) besides tensors, refused'),
])
def test_bad_weights_file_is_one_whole_line(tmp_path, capsys, content, reason):
    sample = tmp_path / 's'
    write_sample(sample, n=1, size=(64, 48))
    bad = tmp_path / 'first_stage.pt'
    if content == 'truncated':
        data = (REPO / 'models' / 'first_stage.pt').read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif content == 'unsafe':
        _unsafe_pickle(bad)
    else:
        bad.write_bytes(content)
    code = main(['evaluate', '--data', str(sample), '--out', str(tmp_path / 'o'), '--quiet',
                 '--set', f'first_stage.weights={bad}'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and '\n' not in err, err
    prefix = f'sgdfuse evaluate: error: first_stage weights {bad} cannot be read: '
    assert err.startswith(prefix), err
    tail = err[len(prefix):]
    assert reason in tail and 'torch.' not in tail and 'weights_only' not in tail, tail
    assert tail.endswith((')', 'again', 'run code')), tail  # whole, not cut off


def test_cuda_without_gpu_and_sam_without_checkpoint_warn_once_and_name_what_ran(
        tmp_path, caplog, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('a GPU is present: device=cuda does not fall back here')
    monkeypatch.setattr(hardware, '_FALLBACK_SAID', False)  # as in a fresh process
    sample = tmp_path / 's'
    write_sample(sample, n=2, size=(64, 48))
    missing = tmp_path / 'no_sam.pth'
    with caplog.at_level(logging.WARNING, logger='sgdfuse_ros'):
        code = main(['evaluate', '--data', str(sample), '--out', str(tmp_path / 'o'), '--quiet',
                     '--set', 'device=cuda', '--set', 'prior.source=sam', *CLASSICAL,
                     '--set', f'prior.sam.checkpoint={missing}'])
    assert code == 0
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in said] == ['WARNING', 'WARNING'], [r.getMessage() for r in said]
    assert 'falling back to CPU' in said[0].getMessage()
    assert 'THERMAL FALLBACK' in said[1].getMessage() and str(missing) in said[1].getMessage()
    report = json.loads((tmp_path / 'o' / 'metrics.json').read_text())
    assert report['label'] == ('sgdfuse (laplacian, K=0, prior thermal (SAM fallback), '
                               'cpu (no GPU))')
    assert report['prior_sources'] == {'thermal': 2} and report['device'] == 'cpu'
    assert report['label'] in (tmp_path / 'o' / 'report.md').read_text().splitlines()[0]


def msrs_like(tmp_path) -> Path:
    """Five MSRS-named pairs (D day, N night) with a split: test lists four of them."""
    sample = tmp_path / 'sample'
    write_sample(sample, n=5, size=(64, 48))
    data = tmp_path / 'msrs'
    names = ['00001D', '00002N', '00003D', '00004N', '00005D']
    for sub in ('ir', 'vis'):
        (data / sub).mkdir(parents=True)
        for i, name in enumerate(names):
            (data / sub / f'{name}.png').write_bytes((sample / sub / f'sample_{i:03d}.png')
                                                     .read_bytes())
    (data / 'split.json').write_text(json.dumps({'train': ['00001D.png'],
                                                 'test': [f'{n}.png' for n in names[1:]]}))
    return data


def test_pairs_are_chosen_alike_split_subset_time_of_day_limit(tmp_path):
    data = msrs_like(tmp_path)
    names = [p.name for p in choose_pairs(data, subset='test')]
    assert names == ['00002N', '00003D', '00004N', '00005D']
    night = choose_pairs(data, subset='test', when='night')
    assert [p.name for p in night] == ['00002N', '00004N']
    assert [p.name for p in choose_pairs(data, when='day', limit=2)] == ['00001D', '00003D']
    split = tmp_path / 'mine.json'
    split.write_text(json.dumps({'test': ['00005D', '00001D']}))
    assert [p.name for p in choose_pairs(None, data / 'ir', data / 'vis', split=split)] == \
        ['00005D', '00001D']  # the split's order
    assert time_of_day('00003N.png') == 'night' and time_of_day('FLIR_00006') is None
    with pytest.raises(InputError, match='none of the 1 pairs is a night frame'):
        choose_pairs(data, subset='train', when='night')
    with pytest.raises(InputError, match='needs --split'):
        choose_pairs(None, data / 'ir', data / 'vis', subset='test')


def test_every_command_that_reads_pairs_takes_the_same_choice(tmp_path, capsys):
    data = msrs_like(tmp_path)
    for name in ('evaluate', 'make-bag', 'metrics', 'register'):
        text = command_help(name)
        for option in ('--split', '--subset', '--time-of-day', '--limit'):
            assert option in text, (name, option)
    bag = tmp_path / 'bag'
    assert main(['make-bag', '--data', str(data), '--subset', 'test', '--time-of-day', 'day',
                 '--limit', '1', '--out', str(bag), '--quiet']) == 0
    outputs, _ = read_bag(bag)
    assert len(outputs['/thermal/image_raw']) == 1
    out = tmp_path / 'eval'
    assert main(['evaluate', '--data', str(data), '--subset', 'test', '--time-of-day', 'night',
                 '--out', str(out), '--quiet', '--no-metrics', *CLASSICAL]) == 0
    assert sorted(p.stem for p in (out / 'fused').iterdir()) == ['00002N', '00004N']
    capsys.readouterr()
    scores = tmp_path / 'scores.json'
    assert main(['metrics', str(out / 'fused'), '--data', str(data), '--time-of-day', 'night',
                 '--limit', '1', '--out', str(scores)]) == 0
    doc = json.loads(scores.read_text())
    assert list(doc['results']['fused']['per_image']) == ['00002N']
    assert main(['register', str(bag), '--subset', 'test', '--out', str(tmp_path / 'h.yaml')]) == 2
    assert 'choose image files' in capsys.readouterr().err


def test_metrics_scores_a_partial_run_and_says_how_many(tmp_path, capsys):
    data = msrs_like(tmp_path)
    out = tmp_path / 'eval'
    assert main(['evaluate', '--data', str(data), '--subset', 'test', '--limit', '1',
                 '--out', str(out), '--quiet', '--no-metrics', *CLASSICAL]) == 0
    capsys.readouterr()
    assert main(['metrics', str(out / 'fused'), '--data', str(data), '--subset', 'test']) == 0
    said = capsys.readouterr().err
    assert "scoring 1 of the 4 images of the 'test' list present in every folder" in said
    assert '1 image(s) per folder of the 4 listed (split.json: test)' in said
    assert main(['metrics', str(out / 'fused'), '--data', str(data), '--subset', 'train']) == 2
    err = capsys.readouterr().err.strip()
    assert "none of the 1 images of the 'train' list is in every folder" in err and \
        '\n' not in err
