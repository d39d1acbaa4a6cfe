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
How the package installs: setup.py's requirements and the CLI's one line when one is missing.

``pip install .`` into a clean virtual environment, then ``sgdfuse --help`` and a real command,
is run by CI (``.ci/run``, step "pip install . (clean venv)"); these tests check, without
installing anything, that the declared ranges accept both stacks CI tests and that a missing
dependency stops the tool with one line saying what to install.
"""

import ast
from pathlib import Path
import re
import sys

from packaging.requirements import Requirement
from packaging.version import Version
import pytest

from sgdfuse_ros import cli

ROOT = Path(__file__).resolve().parents[2]


def setup_requirements():
    """install_requires and extras_require, read from setup.py as literals (as colcon does)."""
    tree = ast.parse((ROOT / 'setup.py').read_text(encoding='utf-8'))
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, 'id', None) == 'setup')
    keywords = {k.arg: k.value for k in call.keywords}
    return (ast.literal_eval(keywords['install_requires']),
            ast.literal_eval(keywords['extras_require']))


def pins(path: Path) -> dict:
    """Return name -> version of the ``name==version`` lines of a requirements file."""
    out = {}
    for line in path.read_text(encoding='utf-8').splitlines():
        match = re.match(r'^([A-Za-z0-9_.-]+)==([^\s;#]+)', line.strip())
        if match:
            out[match.group(1).lower().replace('_', '-')] = match.group(2)
    return out


def test_declared_ranges_accept_the_pinned_and_the_ros_stacks():
    install, extras = setup_requirements()
    requirements = [Requirement(r) for r in install]
    for extra in ('opencv', 'onnxruntime', 'gpu', 'sam', 'mobilesam', 'live', 'test'):
        requirements += [Requirement(r) for r in extras[extra]]
    by_name = {r.name.lower(): r for r in requirements}
    pinned = pins(ROOT / 'requirements.txt')
    checked = 0
    for name, version in pinned.items():
        if name in by_name and by_name[name].specifier:
            assert by_name[name].specifier.contains(Version(version)), (name, version)
            checked += 1
    assert checked >= 8, checked  # numpy, torch, onnx, rosbags, OpenCV, onnxruntime-gpu, ...
    # the ROS distributions' numpy and OpenCV (Humble, Jazzy) and CI's second stack
    oldstack = pins(ROOT / 'requirements-oldstack.txt')
    for numpy in ('1.21.5', '1.26.4', oldstack['numpy']):
        assert by_name['numpy'].specifier.contains(Version(numpy)), numpy
    for opencv in ('4.5.4', '4.6.0', oldstack['opencv-python-headless']):
        assert by_name['opencv-python-headless'].specifier.contains(Version(opencv)), opencv


def test_opencv_is_an_extra_so_pip_never_shadows_a_ros_cv2():
    install, extras = setup_requirements()
    names = [Requirement(r).name.lower() for r in install]
    assert not [n for n in names if n.startswith('opencv')], names
    assert [Requirement(r).name for r in extras['opencv']] == ['opencv-python-headless']
    # onnxruntime and onnxruntime-gpu are one module: never both in one extra or the base
    assert 'onnxruntime' not in names and 'onnxruntime-gpu' not in names
    for extra, listed in extras.items():
        listed = [Requirement(r).name.lower() for r in listed]
        assert not {'onnxruntime', 'onnxruntime-gpu'} <= set(listed), extra


@pytest.mark.parametrize('argv', [['--help'], ['evaluate', '--help'], ['demo']])
def test_missing_opencv_is_one_line_saying_what_to_install(monkeypatch, capsys, argv):
    monkeypatch.setitem(sys.modules, 'cv2', None)  # import cv2 now fails as if not installed
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ''
    assert err.count('\n') == 1, err
    assert err.startswith('sgdfuse: error: OpenCV is not installed (no module cv2): ')
    assert "pip install 'opencv-python-headless" in err and 'python3-opencv' in err


def test_a_dependency_that_fails_to_import_is_named_with_its_reason(monkeypatch, capsys):
    class Broken:

        def find_spec(self, name, path=None, target=None):
            if name == 'rosbags':
                raise ImportError('numpy.core.multiarray failed to import')
            return None

    monkeypatch.delitem(sys.modules, 'rosbags', raising=False)
    monkeypatch.setattr(sys, 'meta_path', [Broken()] + sys.meta_path)
    assert cli.main(['--help']) == 1
    err = capsys.readouterr().err
    assert err == ('sgdfuse: error: rosbags (rosbags) does not import (numpy.core.multiarray '
                   "failed to import): pip install 'rosbags>=0.10,<0.12'\n")


def test_with_every_dependency_help_lists_the_commands(capsys):
    assert cli.missing_dependency() == ''
    assert cli.main(['--help']) == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


def test_gpu_requirements_are_the_ros_ones_with_onnxruntime_gpu():
    def lines(name):
        return [line.strip() for line in (ROOT / name).read_text(encoding='utf-8').splitlines()
                if line.strip() and not line.startswith('#')]

    ros, gpu = lines('requirements-ros.txt'), lines('requirements-gpu.txt')
    swapped = [line.replace('onnxruntime>=', 'onnxruntime-gpu>=') for line in ros]
    assert gpu == swapped, (gpu, swapped)
    names = [Requirement(line.split(' #')[0]).name for line in gpu]
    assert 'onnxruntime' not in names and 'onnxruntime-gpu' in names
    assert not [n for n in names if n.startswith(('pytest', 'numpy', 'opencv'))]
