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
Issue #19, class 6: every user value is checked once, at parse time, with one line.

And from class 8: what a metric is on a degenerate frame (VIF of a constant source, ...), and
``metrics --names ','``. Each case runs the command in-process and asserts what a user sees:
exit status 2, one line on stderr, no traceback; the memory bombs also that they stay small.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import tracemalloc

import cv2
import numpy as np
import pytest
from sgdfuse_ros.cli import build_parser
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.cli import values
from sgdfuse_ros.config import load_config, load_yaml, MAX_YAML_DEPTH, parse_override
from sgdfuse_ros.errors import ConfigError, InputError
from sgdfuse_ros.eval.datasets import read_split
from sgdfuse_ros.eval.metrics import frame_metrics, fusion_metrics
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from test_reliability_support import one_line

ROOT = Path(__file__).resolve().parents[2]
CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
ROS = '/**:\n  ros__parameters:\n'


def error_line(capsys, command: str) -> str:
    """Return the one line a refused command printed on stderr."""
    err = capsys.readouterr().err.strip()
    assert err, 'nothing on stderr'
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f'sgdfuse {command}: error: '), lines[0]
    return one_line(lines[0])


def sample(tmp_path, n=2, size=(64, 48), name='s'):
    ir, vis = write_sample(tmp_path / name, n=n, size=size)
    return Path(ir), Path(vis)


# --- one parse-time check per kind of value ----------------------------------------------------

LONG_INT = '1' + '0' * 400
PARSE_TIME = {
    # --set NAME=VALUE: the one YAML reader, then the parameter table
    '--set x=[': (['evaluate', '--out', 'o', '--set', 'x=['], 'not valid YAML'),
    '--set python name tag': (['evaluate', '--out', 'o', '--set',
                               'device=!!python/name:os.system'], 'not valid YAML'),
    '--set python tuple tag': (['replay', 'b', '--out', 'o', '--set',
                                'registration.homography=!!python/tuple [1,0,0,0,1,0,0,0,1]'],
                               'not valid YAML'),
    '--set alias': (['live', '--set', 'registration.homography=[&a 1, *a]'], 'alias'),
    '--set unknown name': (['export', '--out', 'o', '--set', 'bogus=1'],
                           "unknown parameter 'bogus'"),
    '--set 400-digit integer': (['adapt', 'b', '--out', 'o', '--set',
                                 f'sync.queue_size={LONG_INT}'], 'expected int'),
    '--set without =': (['evaluate', '--out', 'o', '--set', 'device'], 'name=value'),
    '--set date': (['evaluate', '--out', 'o', '--set', 'device=2001-12-14'], 'expected str'),
    # seeds, threads, learning rates, loss weights: one function each, every command
    'make-bag --seed -1': (['make-bag', '--out', 'o', '--seed', '-1'], '--seed'),
    'make-bag --start 5e9': (['make-bag', '--out', 'o', '--start', '5e9'], '2147483647'),
    'make-bag --rate 1e-300': (['make-bag', '--out', 'o', '--rate', '1e-300'], '--rate'),
    'make-bag --jitter-ms 1e300': (['make-bag', '--out', 'o', '--jitter-ms', '1e300'],
                                   '--jitter-ms'),
    'adapt --seed -1': (['adapt', 'b', '--out', 'o', '--seed', '-1'], '--seed'),
    'adapt --threads -1': (['adapt', 'b', '--out', 'o', '--threads', '-1'], '--threads'),
    'adapt --lr inf': (['adapt', 'b', '--out', 'o', '--lr', 'inf'], '(0, 1]'),
    'adapt --lr 1e30': (['adapt', 'b', '--out', 'o', '--lr', '1e30'], '(0, 1]'),
    'adapt --lr nan': (['adapt', 'b', '--out', 'o', '--lr', 'nan'], '(0, 1]'),
    'adapt --loss-weights NaN': (['adapt', 'b', '--out', 'o', '--loss-weights', '{"ssim": NaN}'],
                                 'ssim=nan'),
    'adapt --loss-weights Infinity': (['adapt', 'b', '--out', 'o', '--loss-weights',
                                       '{"ssim": Infinity}'], 'ssim=inf'),
    'adapt --loss-weights unknown key': (['adapt', 'b', '--out', 'o', '--loss-weights',
                                          '{"sharpness": 1}'], 'unknown key(s) sharpness'),
    'adapt --loss-weights negative': (['adapt', 'b', '--out', 'o', '--loss-weights',
                                       '{"ssim": -1}'], '>= 0'),
    'adapt --loss-weights a list': (['adapt', 'b', '--out', 'o', '--loss-weights', '[1]'],
                                    'JSON object'),
    'adapt --loss-weights nested 100000 deep': (['adapt', 'b', '--out', 'o', '--loss-weights',
                                                 '[' * 100000], 'not valid JSON'),
    'adapt --crop 100000': (['adapt', 'b', '--out', 'o', '--crop', '100000'], '--crop'),
    'adapt --steps 0': (['adapt', 'b', '--out', 'o', '--steps', '0'], '--steps'),
    'adapt --val-every -1': (['adapt', 'b', '--out', 'o', '--val-every', '-1'], '--val-every'),
    'adapt --minutes inf': (['adapt', 'b', '--out', 'o', '--minutes', 'inf'], '--minutes'),
    'train --seed -1': (['train', 'first-stage', '--seed', '-1'], '--seed'),
    'train --threads 1000000': (['train', 'first-stage', '--threads', '1000000'], '[0, 256]'),
    'train --lr 5': (['train', 'first-stage', '--lr', '5'], '(0, 1]'),
    'train --sam-share nan': (['train', 'first-stage', '--sam-share', 'nan'], '--sam-share'),
    'train --arch c1=1000000': (['train', 'first-stage', '--arch', '{"c1": 1000000}'],
                                'c1=1000000 is outside 0..1024'),
    'train --arch a list': (['train', 'refiner', '--arch', '[1]'], 'JSON object'),
    # names
    'live --namespace a b': (['live', '--namespace', 'a b'], 'not a valid ROS 2 namespace'),
    'live --name 1x': (['live', '--name', '1x'], 'not a valid ROS 2 node name'),
    'live --remap a:=1b': (['live', '--remap', 'a:=1b'], 'not a valid ROS 2 topic name'),
    'live --remap foo': (['live', '--remap', 'foo'], 'FROM:=TO'),
    'replay --namespace 1bad': (['replay', 'b', '--out', 'o', '--namespace', '1bad'],
                                'not a valid ROS 2 namespace'),
    'export --what ,': (['export', '--out', 'o', '--what', ','], 'names no part'),
    'export --what foo': (['export', '--out', 'o', '--what', 'foo'], 'unknown part(s) foo'),
    'metrics --names ,': (['metrics', 'f', '--names', ','], 'names no metric'),
    'metrics --names EN,EN': (['metrics', 'f', '--names', 'EN,EN'], 'EN listed twice'),
    'metrics --names EN,': (['metrics', 'f', '--names', 'EN,'], 'an empty name'),
    'demo --pairs 0': (['demo', '--pairs', '0'], '--pairs'),
    'evaluate --limit 1e3': (['evaluate', '--out', 'o', '--limit', '1e3'], 'expected an integer'),
    'register --max-uncertainty nan': (['register', '--out', 'o.yaml', '--max-uncertainty', 'nan'],
                                       '--max-uncertainty'),
    'register --set x=[': (['register', '--out', 'o.yaml', '--set', 'x=['], 'not valid YAML'),
}


@pytest.mark.parametrize('case', sorted(PARSE_TIME))
def test_every_bad_value_is_one_line_at_parse_time(capsys, case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written: any output would land here
    argv, needle = PARSE_TIME[case]
    assert cli(argv) == 2
    line = error_line(capsys, argv[0])
    assert 'error: argument' in line and needle in line, line
    assert list(tmp_path.iterdir()) == []


def _types(option: str) -> dict:
    """``{command: type function}`` of ``option`` in every command that has it."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == 'command').choices
    found = {}
    for name, sub in commands.items():
        for action in sub._actions:
            if option in action.option_strings:
                found[name] = action.type
    return found


@pytest.mark.parametrize('option, checker, commands', [
    ('--set', values.override, {'evaluate', 'replay', 'adapt', 'live', 'export'}),
    ('--seed', values.seed, {'make-bag', 'adapt', 'train'}),
    ('--threads', values.threads, {'adapt', 'train'}),
    ('--lr', values.learning_rate, {'adapt', 'train'}),
    ('--loss-weights', values.loss_weights, {'adapt', 'train'}),
    ('--crop', values.crop_size, {'adapt', 'train'}),
    ('--minutes', values.minutes, {'adapt', 'train'}),
])
def test_one_checker_per_kind_of_value_in_every_command(option, checker, commands):
    found = _types(option)
    assert set(found) >= commands  # and any command added since
    assert all(t is checker for t in found.values()), found


def test_train_and_adapt_refuse_the_same_loss_weights(capsys):
    for weights in ('{"sharpness": 1}', '{"ssim": -1}', '{"ssim": NaN}', '{"ssim": 1e7}'):
        lines = []
        for argv in (['train', 'first-stage'], ['adapt', 'b', '--out', 'o']):
            assert cli([*argv, '--loss-weights', weights]) == 2
            line = error_line(capsys, argv[0]).split('--loss-weights: ', 1)[1]
            lines.append(line.rsplit(' (see sgdfuse', 1)[0])
        assert lines[0] == lines[1], lines
    good = values.loss_weights('{"visible_lead": 0, "denoise": 1.5}')
    assert good == {'visible_lead': 0, 'denoise': 1.5}


def test_parse_override_checks_the_value():
    assert parse_override('refiner.steps=2') == ('refiner.steps', 2)
    with pytest.raises(ConfigError, match='expected int'):
        parse_override('refiner.steps=two')
    with pytest.raises(ConfigError, match='not valid YAML'):
        parse_override('x=[')


# --- config files: one bounded YAML reader ------------------------------------------------------

def _laughs(kind: str) -> str:
    """Write a 1 kB config whose aliases expand to 9^10 (3.5 billion) entries."""
    if kind == 'mapping':
        text = 'a: &a {' + ', '.join(f'k{j}: 1' for j in range(9)) + '}\n'
        for i in range(10):
            prev, name = chr(97 + i), chr(98 + i)
            text += f'{name}: &{name} {{' + ', '.join(f'k{j}: *{prev}' for j in range(9)) + '}\n'
        return text + '/**:\n  ros__parameters: *k\n'
    text = 'a: &a [x, x, x, x, x, x, x, x, x]\n'
    for i in range(10):
        prev, name = chr(97 + i), chr(98 + i)
        text += f'{name}: &{name} [' + ', '.join([f'*{prev}'] * 9) + ']\n'
    return text + ROS + '    registration:\n      homography: *k\n'


CONFIGS = {
    'ros__parameters a list': ('/**:\n  ros__parameters: [1, 2]\n', 'must be a mapping'),
    'ros__parameters a scalar': ('/**:\n  ros__parameters: 5\n', 'must be a mapping'),
    'ros__parameters a string': ('fusion_node:\n  ros__parameters: cpu\n', 'must be a mapping'),
    'a recursive alias': ('/**: &a\n  ros__parameters:\n    x: *a\n', 'alias'),
    'a python tag': (ROS + '    device: !!python/name:os.system\n', 'not valid YAML'),
    'a python object tag': (ROS + '    device: !!python/object/apply:os.system [ls]\n',
                            'not valid YAML'),
    'billion laughs (mappings)': (_laughs('mapping'), 'alias'),
    'billion laughs (lists)': (_laughs('list'), 'alias'),
    'a merge key': ('b: &b {device: cpu}\n/**:\n  ros__parameters:\n    <<: *b\n', 'alias'),
    'nested 200 deep': (ROS + '    x: ' + '[' * 200 + ']' * 200 + '\n',
                        f'nested deeper than {MAX_YAML_DEPTH}'),
    'larger than 256 kB': (ROS + '    device: cpu\n' + '#' * 300000 + '\n', '256 kB'),
    'two documents': (ROS + '    device: cpu\n---\n' + ROS + '    device: cpu\n', 'document'),
    'a list of mappings for a list': (ROS + '    registration:\n      homography: [{a: 1}]\n',
                                      'expected list'),
}


@pytest.mark.parametrize('case', sorted(CONFIGS))
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, capsys, case):
    text, needle = CONFIGS[case]
    path = tmp_path / 'c.yaml'
    path.write_text(text)
    ir, vis = sample(tmp_path, n=1)
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(tmp_path / 'o'),
                '--quiet', '--config', str(path)]) == 2
    line = error_line(capsys, 'evaluate')
    assert str(path) in line and needle in line, line
    assert not (tmp_path / 'o').exists()


def test_a_config_that_is_a_folder_or_a_device_says_so(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=1)
    for path, needle in ((tmp_path, 'is a folder'), (Path('/dev/null'), 'not a regular file')):
        assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out',
                    str(tmp_path / 'o'), '--quiet', '--config', str(path)]) == 2
        assert needle in error_line(capsys, 'evaluate')


@pytest.mark.parametrize('kind', ['mapping', 'list'])
def test_a_billion_laughs_config_is_refused_in_kilobytes(tmp_path, kind):
    path = tmp_path / 'laughs.yaml'
    path.write_text(_laughs(kind))
    assert path.stat().st_size < 1200
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match='alias'):
            load_config(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f'{peak / 1e6:.1f} MB'


def test_the_yaml_reader_keeps_what_ros_parameter_files_hold():
    text = (ROS + '    output: {width: 320, height: 240}\n    registration:\n'
            '      homography: [1.0, 0, 0, 0, 1, 0, 0, 0, 1]\n    device: cpu\n')
    document = load_yaml(text, 'x')
    assert document['/**']['ros__parameters']['output'] == {'width': 320, 'height': 240}
    assert load_yaml('&a 5', 'an anchor alone') == 5  # harmless without an alias
    assert load_config(ROOT / 'config' / 'fusion.yaml')  # the shipped file still loads


def test_an_empty_ros_parameters_section_means_the_defaults(tmp_path):
    from sgdfuse_ros.parameters import defaults
    path = tmp_path / 'c.yaml'
    path.write_text('/**:\n  ros__parameters:\n')
    assert load_config(path) == defaults()


# --- split files: one reader for evaluate, make-bag and metrics --------------------------------

SPLITS = {
    'a list': ('["a"]', 'must hold a JSON object'),
    'null': ('null', 'must hold a JSON object'),
    'a number name': ('{"test": [1]}', "'test'[0] is a number"),
    'a null name': ('{"test": ["sample_000", null]}', "'test'[1] is null"),
    'an empty name': ('{"test": [""]}', "'test'[0] is a string"),
    'no such list': ('{"train": []}', "no list 'test'"),
    'the list a string': ('{"test": "sample_000"}', "no list 'test'"),
    'a name twice': ('{"test": ["sample_000", "sample_000.png"]}', 'more than once'),
    'not JSON': ('{"test": [', 'not valid JSON'),
    'nested 100000 deep': ('[' * 100000, 'not valid JSON'),
}


def _split_command(command, data, tmp_path):
    if command == 'evaluate':
        return ['evaluate', '--data', str(data), '--subset', 'test', '--out',
                str(tmp_path / 'o'), '--quiet', *CLASSICAL]
    if command == 'make-bag':
        return ['make-bag', '--data', str(data), '--subset', 'test', '--out',
                str(tmp_path / 'o'), '--quiet']
    return ['metrics', str(data / 'vis'), '--data', str(data), '--subset', 'test']


@pytest.mark.parametrize('command', ['evaluate', 'make-bag', 'metrics'])
@pytest.mark.parametrize('case', sorted(SPLITS))
def test_a_split_file_of_the_wrong_shape_is_one_line(tmp_path, capsys, case, command):
    text, needle = SPLITS[case]
    write_sample(tmp_path / 'd', n=2, size=(64, 48))
    (tmp_path / 'd' / 'split.json').write_text(text)
    assert cli(_split_command(command, tmp_path / 'd', tmp_path)) == 2
    line = error_line(capsys, command)
    assert 'split' in line and needle in line, line
    assert not (tmp_path / 'o').exists()


def test_the_split_reader_keeps_names_with_dots_and_strips_image_suffixes(tmp_path):
    path = tmp_path / 'split.json'
    path.write_text(json.dumps({'test': ['a.jpg', 'b.PNG', 'c.d'], 'source': 'RoadScene'}))
    assert read_split(path, 'test') == ['a', 'b', 'c.d']
    with pytest.raises(InputError, match="no list 'val' \\(lists: test\\)"):
        read_split(path, 'val')


# --- weights files: one validator ---------------------------------------------------------------

def _bad_weights(tmp_path, how: str) -> Path:
    import torch
    shipped = torch.load(ROOT / 'models' / 'first_stage.pt', map_location='cpu',
                         weights_only=True)
    state = dict(shipped['state_dict'])
    first = next(iter(state))
    if how == 'meta':
        state = {k: torch.empty(v.shape, dtype=v.dtype, device='meta') for k, v in state.items()}
    elif how == 'sparse':
        state[first] = state[first].to_sparse()
    elif how == 'complex':
        state[first] = state[first].to(torch.complex64)
    path = tmp_path / f'{how}.pt'
    torch.save(dict(shipped, state_dict=state), path)
    return path


@pytest.mark.parametrize('how, needle', [('meta', 'is a meta tensor'),
                                         ('sparse', 'not a dense one'),
                                         ('complex', 'not a real number type')])
def test_weights_that_are_not_values_are_refused_naming_the_file(tmp_path, capsys, how, needle):
    path = _bad_weights(tmp_path, how)
    ir, vis = sample(tmp_path, n=1)
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(tmp_path / 'o'),
                '--quiet', '--set', 'refiner.steps=0', '--set',
                f'first_stage.weights={path}']) == 2
    line = error_line(capsys, 'evaluate')
    assert str(path) in line and needle in line, line


def test_adapt_train_and_sam_refuse_meta_tensors(tmp_path, capsys):
    import torch
    from sgdfuse_ros.cli.train import init_from
    from sgdfuse_ros.fusion.network import FirstStageNet
    from sgdfuse_ros.prior.sam_checkpoint import read_state_dict
    path = _bad_weights(tmp_path, 'meta')
    assert cli(['adapt', str(tmp_path / 'no_bag'), '--out', str(tmp_path / 'o'), '--quiet',
                '--first-stage', str(path)]) == 2
    line = error_line(capsys, 'adapt')
    assert str(path) in line and 'meta tensor' in line, line
    shipped = torch.load(ROOT / 'models' / 'first_stage.pt', map_location='cpu',
                         weights_only=True)
    with pytest.raises(ConfigError, match='meta tensor'):
        init_from(FirstStageNet.from_arch(shipped['arch']), path, 'first_stage')
    sam = tmp_path / 'sam.pt'
    torch.save({'image_encoder.patch_embed.proj.weight': torch.empty(768, 3, 16, 16,
                                                                     device='meta')}, sam)
    with pytest.raises(ConfigError, match=f'SAM checkpoint {sam}.*meta tensor'):
        read_state_dict(sam)


# --- class 8: metrics on degenerate frames ------------------------------------------------------

def _texture(seed, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, shape), (0, 0), 1.5).round()


def test_vif_of_a_constant_or_nearly_constant_source_is_undefined_not_2():
    f, b = _texture(1), _texture(2)
    const = np.full(f.shape, 100.0)
    nearly = const.copy()
    nearly[20, 30] = 101.0
    assert fusion_metrics(f, const, const)['VIF'] == 2.0  # the reference's convention, kept
    # ... and how a nearly constant source inflates it (one odd pixel: vifp 1.93 vs 0.004)
    assert fusion_metrics(f, nearly, b)['VIF'] > 1.0 > fusion_metrics(f, _texture(3), b)['VIF']
    for source in (const, nearly):
        values, missing = frame_metrics(f, source, b)
        assert values['VIF'] is None and 'infrared image is constant or nearly so' in \
            missing['VIF']
    values, missing = frame_metrics(f, _texture(3), b)
    assert missing == {} and 0.0 < values['VIF'] < 2.0


def test_correlations_and_qabf_against_sources_without_information_are_undefined():
    f = _texture(4)
    const, zero = np.full(f.shape, 80.0), np.zeros(f.shape)
    values, missing = frame_metrics(f, _texture(5), const)
    assert values['CC'] is None and values['SCD'] is None
    assert 'visible image is constant' in missing['CC']
    values, missing = frame_metrics(f, zero, zero)
    assert values['Qabf'] is None and 'neither source has any edge' in missing['Qabf']
    a = _texture(6)
    values, missing = frame_metrics(a, a, a)
    assert values['PSNR'] is None and 'MSE 0' in missing['PSNR']
    assert not any(v is not None and math.isnan(v) for v in values.values())


def test_a_degenerate_fused_image_is_scored_not_excused():
    a, b = _texture(7), _texture(8)
    flat, black = np.full(a.shape, 128.0), np.zeros(a.shape)
    values, missing = frame_metrics(flat, a, b)
    assert missing == {}
    assert values['VIF'] == 0.0 and values['CC'] == 0.0 and values['EN'] == 0.0
    values, missing = frame_metrics(black, a, b)
    assert missing == {} and values['PSNR'] == -math.inf


def test_a_frame_too_small_for_vif_has_no_vif():
    f, a, b = _texture(9, (12, 40)), _texture(10, (12, 40)), _texture(11, (12, 40))
    values, missing = frame_metrics(f, a, b)
    assert values['VIF'] is None and 'at least 17x17' in missing['VIF']
    assert values['EN'] is not None and values['SSIM'] is not None


def test_evaluate_leaves_undefined_vif_out_of_the_mean_and_says_why(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=3, size=(96, 64))
    cv2.imwrite(str(ir / 'sample_001.png'), np.full((64, 96), 90, np.uint8))  # a shutter frame
    out = tmp_path / 'o'
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *CLASSICAL]) == 0
    report = json.loads((out / 'metrics.json').read_text())
    per = report['per_image']
    assert per['sample_001']['VIF'] is None
    assert 'constant' in report['metrics_missing']['sample_001']['VIF']
    others = [per[n]['VIF'] for n in ('sample_000', 'sample_002')]
    assert report['mean']['VIF'] == pytest.approx(sum(others) / 2)
    assert report['scored']['VIF'] == 2 and report['scored']['EN'] == 3
    text = (out / 'report.md').read_text()
    assert 'VIF on 1' in text and 'constant or nearly so' in text


def test_metrics_command_says_which_metrics_were_undefined(tmp_path, capsys):
    ir, vis = sample(tmp_path, n=2, size=(96, 64))
    cv2.imwrite(str(ir / 'sample_000.png'), np.full((64, 96), 90, np.uint8))
    out = tmp_path / 'm.json'
    assert cli(['metrics', str(vis), '--ir', str(ir), '--vis', str(vis), '--out', str(out)]) == 0
    err = capsys.readouterr().err
    assert 'undefined on some images' in err and 'VIF on 1' in err
    doc = json.loads(out.read_text())
    result = next(iter(doc['results'].values()))
    assert result['per_image']['sample_000']['VIF'] is None
    assert 'VIF' in result['metrics_missing']['sample_000']
    assert result['mean']['VIF'] == pytest.approx(result['per_image']['sample_001']['VIF'])


@pytest.mark.parametrize('kind', ['mapping', 'list'])
def test_a_bag_whose_metadata_is_a_billion_laughs_is_one_line(tmp_path, capsys, kind):
    bag = tmp_path / 'bag'
    bag.mkdir()
    anchors = _laughs(kind).split('/**')[0]  # the nine-fold aliases, a to k
    (bag / 'metadata.yaml').write_text(anchors + 'rosbag2_bagfile_information:\n  version: 8\n'
                                       '  relative_file_paths: *k\n')
    (bag / 'bag_0.db3').write_bytes(b'SQLite format 3\x00' + bytes(100))
    tracemalloc.start()
    try:
        code = cli(['replay', str(bag), '--out', str(tmp_path / 'o'), '--quiet', *CLASSICAL])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2
    line = error_line(capsys, 'replay')
    assert 'metadata.yaml' in line and 'alias' in line, line
    assert peak < 64 * 1024 * 1024, f'{peak / 1e6:.1f} MB'
