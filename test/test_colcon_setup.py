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
What ``colcon test`` and ``launch_test`` need from the package, checked without ROS.

- setup.py names pytest as the test dependency (else colcon falls back to unittest: 0 tests);
- requirements-ros.txt installs no pytest: the README's route keeps the distribution's, which
  ROS's launch_testing plugin works with; where that plugin cannot load (the project's own
  venv with ROS sourced) scripts/ros_pytest_args.py turns it off instead of pytest stopping;
- flake8 runs in one process (no fork of a test process that runs threads);
- ament_copyright gets paths that are no repository root (its root check ignores --exclude);
- the launch test files import only what ``launch_test FILE`` provides.
"""

import ast
import os
from pathlib import Path
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from lint_support import copyright_paths, flake8_argv, FLAKE8_CONFIG, flake8_jobs, \
    is_repository_root, NOT_SOURCES
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_TESTS = ROOT / 'test' / 'ros'


def setup_keywords():
    """Return the literal keyword arguments of setup(...) in setup.py, as colcon reads them."""
    tree = ast.parse((ROOT / 'setup.py').read_text(encoding='utf-8'))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and
             getattr(node.func, 'id', None) == 'setup']
    assert len(calls) == 1
    out = {}
    for keyword in calls[0].keywords:
        try:
            out[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            out[keyword.arg] = None  # computed (data_files, ...)
    return out


def requirement_names(path: Path):
    names = []
    for line in path.read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            names.append(re.split(r'[\s<>=!~;\[]', line, maxsplit=1)[0].lower())
    return names


# --- colcon runs pytest ------------------------------------------------------------------------
def test_setup_py_declares_pytest_as_the_test_dependency():
    keywords = setup_keywords()
    # colcon-core's has_test_dependency: tests_require, and extras_require['test'] since 0.12
    for declared in (keywords.get('tests_require'),
                     (keywords.get('extras_require') or {}).get('test')):
        assert declared is not None
        assert 'pytest' in [re.split(r' |<|=|>|!', d)[0] for d in declared]
    # and package.xml names it for rosdep
    tree = ET.parse(ROOT / 'package.xml')
    assert 'python3-pytest' in [e.text for e in tree.getroot().iter('test_depend')]


# --- which pytest a ROS user runs --------------------------------------------------------------
def test_ros_requirements_keep_the_distributions_pytest():
    ros = requirement_names(ROOT / 'requirements-ros.txt')
    assert ros, 'no requirement read'
    assert not [name for name in ros if name.startswith('pytest')], ros
    assert 'colcon-common-extensions' not in ros  # it would bring a pytest of its own
    assert 'pytest' in requirement_names(ROOT / 'requirements.txt')  # the developer's venv


def fake_plugin(root: Path, hook_args: str) -> Path:
    """Make a distribution that registers a pytest plugin named launch_testing, as ROS does."""
    info = root / 'launch_testing-0.0.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: launch_testing\n'
                                   'Version: 0.0.0\n')
    (info / 'entry_points.txt').write_text('[pytest11]\nlaunch_testing = fake_lt_hooks\n')
    (root / 'fake_lt_hooks.py').write_text(
        f'def pytest_pycollect_makemodule({hook_args}):\n    return None\n')
    return root


def run_python(args, pythonpath: Path, cwd: Path):
    """Run this Python seeing only ``pythonpath`` besides its own packages (not ROS's)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTEST_ADDOPTS', 'PYTEST_PLUGINS')}  # colcon sets these
    env['PYTHONPATH'] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_ros_plugin_this_pytest_cannot_load_is_turned_off(tmp_path):
    # Jazzy's launch_testing 3.4.3 declares the hook with the 'path' argument pytest 9 dropped
    plugins = fake_plugin(tmp_path / 'old', 'path, parent')
    (tmp_path / 'test_one.py').write_text('def test_one():\n    assert True\n')
    pytest_run = ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'test_one.py']
    broken = run_python(pytest_run, plugins, tmp_path)
    printed = run_python([str(ROOT / 'scripts' / 'ros_pytest_args.py')], plugins, tmp_path)
    assert printed.returncode == 0, printed.stderr
    args = printed.stdout.split()
    if broken.returncode == 0:  # pytest < 8.1 (the distributions'): the plugin loads
        assert args == []
        return
    assert 'PluginValidationError' in broken.stdout + broken.stderr
    assert args == ['-p', 'no:launch_testing']
    assert 'launch_test FILE' in printed.stderr  # says what to do instead
    fixed = run_python(pytest_run[:2] + args + pytest_run[2:], plugins, tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_a_ros_plugin_that_loads_is_left_alone(tmp_path):
    plugins = fake_plugin(tmp_path / 'new', 'module_path, parent')
    printed = run_python([str(ROOT / 'scripts' / 'ros_pytest_args.py')], plugins, tmp_path)
    assert (printed.returncode, printed.stdout) == (0, '')
    assert run_python([str(ROOT / 'scripts' / 'ros_pytest_args.py')], tmp_path / 'none',
                      tmp_path).stdout == ''


# --- linters -----------------------------------------------------------------------------------
def test_flake8_runs_in_one_process():
    assert flake8_argv() == ['--config', str(FLAKE8_CONFIG)]
    assert flake8_jobs() == '1'


def ament_style_sources(root: Path):
    """Find the .py files ament_copyright checks walking ``root`` (not a package setup.py)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d[0] not in '._' and
                       not (Path(dirpath) == root and d in NOT_SOURCES)]
        for name in filenames:
            if name.endswith('.py') and not (name == 'setup.py' and Path(dirpath) == root):
                found.add(Path(dirpath, name).resolve())
    return found


def covered(paths, root: Path):
    files = set()
    for path in paths:
        path = (root / path).resolve()
        files |= ament_style_sources(path) if path.is_dir() else {path}
    return files


def test_copyright_paths_cover_every_source_and_no_repository_root(tmp_path):
    paths = copyright_paths(ROOT)
    assert not any(is_repository_root(ROOT / p) for p in paths)
    assert not {'.', 'LICENSE', 'CONTRIBUTING.md'} & set(paths)
    assert covered(paths, ROOT) == ament_style_sources(ROOT)
    assert {'sgdfuse_ros', 'test', 'launch'} <= set(paths)
    # a git checkout (.git is a file in a worktree), with artefacts and hidden folders
    (tmp_path / '.git').write_text('gitdir: elsewhere\n')
    for name in ('LICENSE', 'setup.py', 'tool.py', 'README.md', 'pkg/a.py', '.hidden/b.py',
                 '_private/c.py', 'build/d.py', 'ignored/e.py', 'ignored/AMENT_IGNORE'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('')
    assert copyright_paths(tmp_path) == ['pkg', 'tool.py']


# --- launch_test FILE --------------------------------------------------------------------------
ROS_MODULES = {'rclpy', 'launch', 'launch_ros', 'launch_testing', 'builtin_interfaces',
               'diagnostic_msgs', 'lifecycle_msgs', 'rcl_interfaces', 'rosgraph_msgs',
               'sensor_msgs', 'vision_msgs'}
PYTHON_DEPS = {'python3-numpy': 'numpy', 'python3-pytest': 'pytest', 'python3-opencv': 'cv2',
               'python3-yaml': 'yaml'}
INSERTS_OWN_FOLDER = 'sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))'


def imported_modules(path: Path):
    """(line, top-level module) of every import and pytest.importorskip('...') at module level."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split('.')[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f'{path.name}: relative import'
            found.append((node.lineno, node.module.split('.')[0]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and
              node.func.attr == 'importorskip' and node.args and
              isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, node.args[0].value.split('.')[0]))
    return tree, found


def declared_dependencies():
    root = ET.parse(ROOT / 'package.xml').getroot()
    names = {e.text for tag in ('exec_depend', 'test_depend', 'depend') for e in root.iter(tag)}
    return {PYTHON_DEPS.get(name, name) for name in names}


def test_launch_tests_import_only_what_launch_test_provides():
    launch_files = sorted(p for p in ROS_TESTS.glob('*.py')
                          if 'def generate_test_description' in p.read_text(encoding='utf-8'))
    assert [p.name for p in launch_files] == ['test_alignment_launch.py',
                                              'test_compressed_launch.py',
                                              'test_detector_tuned_launch.py',
                                              'test_fusion_launch.py',
                                              'test_fusion_sim_time_launch.py']
    siblings = {p.stem for p in ROS_TESTS.glob('*.py')}
    # what a sourced ROS install gives a launch test: the package, and what package.xml declares
    # (rosdep installs it: ROS packages, python3-numpy, python3-opencv, ...)
    provided = set(sys.stdlib_module_names) | {'sgdfuse_ros'} | declared_dependencies()
    assert ROS_MODULES <= declared_dependencies(), 'package.xml must declare what tests import'
    helpers_seen, queue = set(), list(launch_files)
    while queue:
        path = queue.pop()
        tree, imports = imported_modules(path)
        inserts = [node.lineno for node in tree.body
                   if isinstance(node, ast.Expr) and ast.unparse(node) == INSERTS_OWN_FOLDER]
        for line, module in imports:
            if module in provided or module == 'numpy' or module == 'pytest':
                continue
            assert module in siblings and module not in ('conftest',) and \
                not module.startswith('test_'), \
                f'{path.name}:{line} imports {module}, which launch_test FILE does not provide'
            if path in launch_files:  # the launch test itself puts its folder on sys.path first
                assert inserts and inserts[0] < line, \
                    f'{path.name}:{line} imports {module} before adding its own folder to sys.path'
            if module not in helpers_seen:
                helpers_seen.add(module)
                queue.append(ROS_TESTS / f'{module}.py')
    assert helpers_seen == {'ros_probe', 'ros_sync'}


# Loads a launch test file the way ``launch_test FILE`` does (importlib, by path) in a fresh
# Python whose sys.path holds the package (as a sourced install does) but no test folder, from
# another working directory. ROS's modules are stand-ins that accept any use: what is checked is
# where the file's own imports come from.
LOAD_LIKE_LAUNCH_TEST = r"""
import importlib.abc
import importlib.util
import sys
import types

ROS = set(sys.argv[2].split(','))


class Anything:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return Anything()

    def __getattr__(self, name):
        return Anything()


class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ROS:
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda name: Anything
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, StandIns())
spec = importlib.util.spec_from_file_location('launch_test_module', sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.generate_test_description)
for name in ('ros_probe', 'ros_sync'):
    print(name, sys.modules[name].__file__)
"""


@pytest.mark.parametrize('name', ['test_alignment_launch.py', 'test_detector_tuned_launch.py',
                                  'test_fusion_launch.py', 'test_fusion_sim_time_launch.py'])
def test_a_launch_test_file_loads_without_pytest_paths(tmp_path, name):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTEST_ADDOPTS', 'PYTEST_PLUGINS')}
    env['PYTHONPATH'] = str(ROOT)  # the package, as \`source install/setup.bash\` provides it
    done = subprocess.run(
        [sys.executable, '-c', LOAD_LIKE_LAUNCH_TEST, str(ROS_TESTS / name),
         ','.join(sorted(ROS_MODULES))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = dict(line.split(' ', 1) for line in done.stdout.splitlines())
    assert found == {'ros_probe': str(ROS_TESTS / 'ros_probe.py'),
                     'ros_sync': str(ROS_TESTS / 'ros_sync.py')}
