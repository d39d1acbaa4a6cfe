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
A checkpoint never runs code; paths and values from parameters are checked before use.

- every ``torch.load`` in the package (and the benchmarks) passes ``weights_only=True``, and no
  other unpickler is used (a scan of the source);
- a checkpoint whose pickle carries a ``__reduce__`` payload is refused by every loader (SAM,
  the learned stages, the pipeline, the node) and the payload's side effect never happens;
- weights/checkpoint paths must be existing, regular, readable files (one-line ConfigError);
- parameter values are range-checked when the node is created and on every runtime change:
  out-of-range values are rejected, never clamped, and nothing of a rejected change applies.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from sgdfuse_ros.config import check_model_file, load_config
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.parameters import SPECS
from sgdfuse_ros.transport.memory import MemoryTransport
from test_reliability_support import EchoPipeline, make_core, one_line

ROOT = Path(__file__).resolve().parents[2]
SCANNED = sorted((ROOT / 'sgdfuse_ros').rglob('*.py')) + sorted((ROOT / 'benchmarks').glob('*.py'))
UNPICKLERS = {('pickle', 'load'), ('pickle', 'loads'), ('pickle', 'Unpickler'),
              ('dill', 'load'), ('dill', 'loads'), ('joblib', 'load'), ('cloudpickle', 'load'),
              ('cloudpickle', 'loads'), ('marshal', 'loads'), ('shelve', 'open')}


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f'{_dotted(node.value)}.{node.attr}'
    return ''


def _problems(path: Path):
    """(line, what) for every unsafe load in one file; also the number of torch.load calls."""
    tree = ast.parse(path.read_text(), str(path))
    problems, torch_loads = [], 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ('torch', 'pickle', 'dill'):
            for alias in node.names:
                if alias.name in ('load', 'loads', 'Unpickler'):
                    problems.append((node.lineno, f'from {node.module} import {alias.name}'))
        if isinstance(node, ast.Attribute) and _dotted(node) == 'torch.load':
            parent_calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call)
                            and c.func is node]
            if not parent_calls:  # torch.load passed around as a value: cannot be checked
                problems.append((node.lineno, 'torch.load used as a value'))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name == 'torch.load':
            torch_loads += 1
            flags = {k.arg: k.value for k in node.keywords}
            safe = isinstance(flags.get('weights_only'), ast.Constant) and \
                flags['weights_only'].value is True
            if not safe or any(k.arg is None for k in node.keywords):
                problems.append((node.lineno, 'torch.load without weights_only=True'))
        if tuple(name.split('.')[-2:]) in UNPICKLERS:
            problems.append((node.lineno, f'{name}()'))
        if name.endswith(('np.load', 'numpy.load')):
            for k in node.keywords:
                if k.arg == 'allow_pickle' and not (isinstance(k.value, ast.Constant)
                                                    and k.value.value is False):
                    problems.append((node.lineno, 'numpy.load with allow_pickle'))
    return problems, torch_loads


def test_every_torch_load_in_the_package_is_weights_only():
    found, total = [], 0
    for path in SCANNED:
        problems, count = _problems(path)
        total += count
        found += [f'{path.relative_to(ROOT)}:{line}: {what}' for line, what in problems]
    assert found == []
    assert total >= 3  # SAM, the learned stages' weights, the training checkpoint: not vacuous


def test_the_scan_sees_unsafe_loads(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import torch, pickle\n'
                   'a = torch.load(p)\n'
                   'b = torch.load(p, weights_only=False)\n'
                   'c = torch.load(p, **options)\n'
                   'd = pickle.loads(data)\n'
                   'loader = torch.load\n'
                   "e = torch.load(p, map_location='cpu', weights_only=True)\n")
    problems, count = _problems(bad)
    assert count == 4
    assert sorted(line for line, _ in problems) == [2, 3, 4, 5, 6]


# --- malicious checkpoints -----------------------------------------------------------------------

torch = pytest.importorskip('torch')


class _OpenFile:
    """Unpickling this would create ``target`` (a file the attacker chose)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, 'w'))


class _Exec:
    """Unpickling this would run Python code."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').write('pwned')",))


PAYLOADS = {'open': _OpenFile, 'exec': _Exec}


def _evil(tmp_path, payload, layout):
    marker = tmp_path / 'PWNED'
    path = tmp_path / f'evil_{layout}.pt'
    thing = PAYLOADS[payload](marker)
    if layout == 'weights':  # shaped like our weights files, the payload inside the tensors
        torch.save({'kind': 'first_stage', 'format': 1, 'arch': {},
                    'state_dict': {'conv.weight': thing}, 'info': {}}, path)
    else:  # shaped like a SAM state dict
        torch.save({'image_encoder.patch_embed.proj.weight': thing}, path)
    return path, marker


@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_sam_loader_refuses_pickled_code(tmp_path, payload):
    from sgdfuse_ros.prior.sam import load_sam
    path, marker = _evil(tmp_path, payload, 'sam')
    with pytest.raises(ConfigError) as err:
        load_sam(path, 'vit_b')
    assert str(path) in one_line(str(err.value)) and 'cannot be read safely' in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_weights_loader_refuses_pickled_code(tmp_path, payload):
    from sgdfuse_ros.fusion.weights import load_weights
    path, marker = _evil(tmp_path, payload, 'weights')
    with pytest.raises(ConfigError) as err:
        load_weights(path, 'first_stage', lambda arch: torch.nn.Linear(1, 1))
    assert str(path) in one_line(str(err.value))
    assert not marker.exists()


@pytest.mark.parametrize('payload', sorted(PAYLOADS))
def test_pipeline_and_node_refuse_pickled_code(tmp_path, payload):
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
    path, marker = _evil(tmp_path, payload, 'weights')
    config = load_config(overrides={'first_stage.type': 'network',
                                    'first_stage.weights': str(path), 'device': 'cpu'})
    with pytest.raises(ConfigError):
        FusionPipeline(config)
    sam = load_config(overrides={'prior.source': 'sam', 'prior.on_sam_error': 'error',
                                 'prior.sam.checkpoint': str(_evil(tmp_path, payload, 'sam')[0]),
                                 'device': 'cpu'})
    with pytest.raises(ConfigError):
        FusionPipeline(sam)
    core, _ = make_core({'first_stage.type': 'network', 'first_stage.weights': str(path),
                         'device': 'cpu'}, start=False)
    core.configure()
    with pytest.raises(ConfigError) as err:
        core.activate()
    assert str(path) in one_line(str(err.value)) and core.state == 'inactive'
    core.shutdown()
    assert not marker.exists()


# --- paths from parameters -----------------------------------------------------------------------

def test_model_paths_must_be_existing_regular_readable_files(tmp_path, monkeypatch):
    import os
    good = tmp_path / 'ok.pt'
    good.write_bytes(b'x')
    assert check_model_file(good, 'refiner.weights', 'refiner weights') == good
    (tmp_path / 'dir').mkdir()
    os.mkfifo(tmp_path / 'fifo')
    for path, needle in ((tmp_path / 'nope.pt', 'not found'), (tmp_path / 'dir', 'a directory'),
                         (tmp_path / 'fifo', 'not a regular file'),
                         (Path('/dev/zero'), 'not a regular file')):
        with pytest.raises(ConfigError) as err:
            check_model_file(path, 'refiner.weights', 'refiner weights')
        text = one_line(str(err.value))
        assert text.startswith(f'refiner.weights: {path}') and needle in text, text
    monkeypatch.setattr(os, 'access', lambda p, mode: False)
    with pytest.raises(ConfigError, match='not readable'):
        check_model_file(good, 'refiner.weights', 'refiner weights')


@pytest.mark.parametrize('overrides,parameter', [
    ({'refiner.steps': 2, 'refiner.weights': '{dir}'}, 'refiner.weights'),
    ({'first_stage.type': 'network', 'first_stage.weights': '{fifo}'}, 'first_stage.weights'),
    ({'prior.source': 'sam', 'prior.on_sam_error': 'error', 'prior.sam.checkpoint': '{dir}'},
     'prior.sam.checkpoint'),
])
def test_the_pipeline_checks_the_paths_of_the_stages_it_builds(tmp_path, overrides, parameter):
    import os

    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
    (tmp_path / 'dir').mkdir()
    os.mkfifo(tmp_path / 'fifo')  # a loader reading a FIFO would block forever
    values = {k: v.format(dir=tmp_path / 'dir', fifo=tmp_path / 'fifo') if isinstance(v, str)
              else v for k, v in overrides.items()}
    with pytest.raises(ConfigError) as err:
        FusionPipeline(load_config(overrides=dict(values, device='cpu')))
    assert one_line(str(err.value)).startswith(parameter + ':')


# --- parameter values ----------------------------------------------------------------------------

def _bad_values(spec):
    """(value, message fragment) pairs that ``spec`` must refuse."""
    out = []
    kind = spec.kind
    if kind in (int, float):
        if spec.min is not None:
            below = spec.min - (1 if kind is int else max(1e-3, abs(spec.min) * 0.5))
            out.append((int(below) if kind is int else below, 'below the minimum'))
        if spec.max is not None:
            above = spec.max + (1 if kind is int else max(1e-3, abs(spec.max) * 0.5))
            out.append((int(above) if kind is int else above, 'above the maximum'))
        out.append(('fast', 'expected'))
        out.append((True, 'expected'))
        if kind is float:
            out.append((math.nan, 'NaN'))
            out.append((math.inf, 'above the maximum'))
        else:
            out.append((1.5, 'expected int'))
    elif kind is bool:
        out.append(('yes', 'expected bool'))
        out.append((1, 'expected bool'))
    elif kind is str and spec.choices:
        out.append(('no_such_choice', 'is not one of'))
        out.append((3, 'expected str'))
    elif kind is str:
        out.append((3, 'expected str'))
    elif kind is list:
        out += [([1, 0, 0], '9 numbers'), ([math.nan] + [0.0] * 8, 'NaN or infinity'),
                ([0.0] * 9, 'singular'), ('identity', 'expected list')]
    return out


CASES = [(name, value, needle) for name, spec in sorted(SPECS.items())
         for value, needle in _bad_values(spec)]


def test_every_parameter_has_refusals():
    assert {name for name, _, _ in CASES} == set(SPECS)


@pytest.mark.parametrize('name,value,needle', CASES,
                         ids=[f'{n}={v!r}' for n, v, _ in CASES])
def test_runtime_changes_out_of_range_are_rejected_not_clamped(name, value, needle):
    spec = SPECS[name]
    core, _ = make_core(factory=EchoPipeline, start=not spec.read_only)
    before = dict(core.config)
    with pytest.raises(ConfigError) as err:  # with a valid change beside it: all or nothing
        core.set_parameters({'sync.queue_size': 7, name: value} if name != 'sync.queue_size'
                            else {'sync.slop': 0.03, name: value})
    assert needle in one_line(str(err.value)) and name in str(err.value)
    assert core.config == before
    core.shutdown()


@pytest.mark.parametrize('name,value,needle', CASES[::3],
                         ids=[f'{n}={v!r}' for n, v, _ in CASES[::3]])
def test_out_of_range_values_are_rejected_when_the_node_is_created(name, value, needle):
    config = load_config()
    config[name] = value
    with pytest.raises(ConfigError, match=needle.split()[0]):
        FusionNodeCore(MemoryTransport(), config, pipeline_factory=EchoPipeline)


def test_read_only_parameters_refused_while_active_whatever_their_value():
    core, _ = make_core(factory=EchoPipeline)
    for name in sorted(n for n, s in SPECS.items() if s.read_only):
        with pytest.raises(ConfigError, match='read-only'):
            core.set_parameters({name: SPECS[name].default})
    core.shutdown()


def test_a_valid_runtime_change_still_applies():
    core, _ = make_core(factory=EchoPipeline)
    changed = core.set_parameters({'faults.oom_retry': 'half_resolution',
                                   'registration.homography': [2, 0, 0, 0, 2, 0, 0, 0, 1]})
    assert changed['faults.oom_retry'] == 'half_resolution'
    assert core.config['registration.homography'] == [2.0, 0, 0, 0, 2.0, 0, 0, 0, 1.0]
    core.shutdown()
