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
Style of the whole package: flake8 with ament's configuration and plugins.

ament_flake8 does the checking; the test is skipped where ROS 2's linters are not installed.
"""

from pathlib import Path

import pytest

ament_flake8 = pytest.importorskip('ament_flake8.main')

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    monkeypatch.chdir(PACKAGE)  # ament_flake8 checks, and skips hidden folders of, the cwd
    rc, errors = ament_flake8.main_with_errors(argv=[])
    assert rc == 0, '%d flake8 violations:\n%s' % (len(errors), '\n'.join(errors))
