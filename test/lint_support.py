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
How the linter tests run (no tests here): ament's linter where it works, else scripts/lint.sh.

Under ``colcon test`` (the README's route) ament_flake8, ament_pep257 and ament_copyright import
and check the package in this process. Where one of them is not installed (no ROS) or cannot be
imported by this Python (ROS sourced into a virtual environment that lacks flake8 or
pydocstyle), the test runs the same check through ``scripts/lint.sh PART`` instead, whose own
virtual environment holds the pinned tools (created on first use; needs PyPI once). So a
linter test never skips: it passes, or fails saying what is wrong.

Nothing here forks the test process: flake8 runs in one process (``jobs = 1`` in
test/ament_flake8.ini), and scripts/lint.sh is started as a new program (fork + exec).
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import os
from pathlib import Path
import subprocess
import sys
from typing import List, Optional

PACKAGE = Path(__file__).resolve().parents[1]
FLAKE8_CONFIG = PACKAGE / 'test' / 'ament_flake8.ini'
LINT_SCRIPT = PACKAGE / 'scripts' / 'lint.sh'

# ament_copyright's source extensions (ament_copyright/main.py)
COPYRIGHT_EXTENSIONS = ('.c', '.cc', '.cpp', '.cxx', '.h', '.hh', '.hpp', '.hxx', '.cmake', '.py')
# local artefacts of a checkout (.gitignore): not sources
NOT_SOURCES = ('build', 'install', 'log', 'outputs')


def ament_linter(name: str):
    """
    Return ``(module, None)`` for ``<name>.main`` when it imports, else ``(None, why)``.

    ``why`` says whether ament's package is absent or present but not importable here.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as err:
        return None, f'{name} is not importable: {err}'
    if spec is None:
        return None, f'{name} is not installed for {sys.executable} (no ROS 2 here)'
    try:
        return importlib.import_module(name + '.main'), None
    except ImportError as err:
        return None, (f'{name} is installed ({spec.origin}) but does not import in '
                      f'{sys.executable}: {err}')


def run_lint_script(part: str, timeout: float = 900.0) -> subprocess.CompletedProcess:
    """Run ``bash scripts/lint.sh PART`` from the package directory; output captured."""
    return subprocess.run(['bash', str(LINT_SCRIPT), part], cwd=PACKAGE, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))


def lint_script_verdict(part: str, why_not_ament: str) -> Optional[str]:
    """Run scripts/lint.sh PART; None when it passes, else a readable failure message."""
    done = run_lint_script(part)
    if done.returncode == 0:
        return None
    output = (done.stdout + done.stderr)[-6000:]
    return (f'{why_not_ament}; ran `bash scripts/lint.sh {part}` instead, which failed '
            f'(exit {done.returncode}; if its virtual environment could not be set up, it '
            f'needs PyPI once, or set SGDFUSE_LINT_VENV to one that has the pinned tools):\n'
            f'{output}')


def flake8_argv() -> List[str]:
    """ament_flake8's arguments: our copy of its configuration, which adds ``jobs = 1``."""
    return ['--config', str(FLAKE8_CONFIG)]


def flake8_jobs(config: Path = FLAKE8_CONFIG) -> str:
    parser = configparser.ConfigParser()
    parser.read(config, encoding='utf-8')
    return parser.get('flake8', 'jobs', fallback='auto')


def is_repository_root(path: Path) -> bool:
    """As ament_copyright's crawler decides it: a folder holding .git (file or folder) or .hg."""
    return (path / '.git').exists() or (path / '.hg').exists()


def copyright_paths(package: Path = PACKAGE) -> List[str]:
    """
    Give the paths to hand ament_copyright: the package's folders and top-level sources.

    Not the package folder itself: ament_copyright 0.17 also checks a repository root's
    CONTRIBUTING.md and LICENSE whenever a folder it walks is a repository root (a git checkout,
    as the README's route makes), whatever ``--exclude`` says. Handing it the subfolders checks
    every source file (as walking ``.`` would: hidden and ``_`` folders skipped, setup.py left
    to the package tools) and no repository-level file. Relative to ``package``.
    """
    paths = []
    for entry in sorted(package.iterdir(), key=lambda p: p.name):
        if entry.name[0] in '._' or entry.name in NOT_SOURCES:
            continue
        if entry.is_dir():
            if not (entry / 'AMENT_IGNORE').exists():
                paths.append(entry.name)
        elif entry.suffix in COPYRIGHT_EXTENSIONS and entry.name != 'setup.py':
            paths.append(entry.name)
    return paths
