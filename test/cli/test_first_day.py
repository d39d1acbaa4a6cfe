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

import pytest
from sgdfuse_ros import hardware
from sgdfuse_ros.cli import build_parser, COMMANDS, main
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from sgdfuse_ros.parameters import ALL_PARAMS, render_yaml
import torch

REPO = Path(__file__).resolve().parents[2]
CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']


def command_help(name: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == 'command')
    return sub.choices[name].format_help()


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
