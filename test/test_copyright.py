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
Every Python source file carries our copyright line and the Apache-2.0 notice.

ament_copyright does the checking; the test is skipped where ROS 2's linters are not installed.
"""

from pathlib import Path

import pytest

ament_copyright = pytest.importorskip('ament_copyright.main')

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright(monkeypatch):
    # As colcon runs it: from the package directory, every .py file below it. This directory is
    # also the repository root, where ament_copyright would also check repository-level LICENSE
    # and CONTRIBUTING.md files; LICENSE holds the full Apache-2.0 text (as package.xml
    # declares) and there is no CONTRIBUTING.md, so those two are left out of this check.
    monkeypatch.chdir(PACKAGE)
    rc = ament_copyright.main(argv=['.', 'test', '--exclude', 'LICENSE', 'CONTRIBUTING.md'])
    assert rc == 0, 'some files lack a copyright line or a recognised license notice'
