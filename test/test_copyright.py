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
Every source file carries our copyright line and the Apache-2.0 notice.

ament_copyright does the checking where it is usable (`colcon test`); elsewhere scripts/lint.sh
runs an equivalent header check (test/lint_support.py). Never skipped. ament_copyright is given
the package's folders, not the package folder itself, which in a git checkout is the
repository root (see lint_support.copyright_paths).
"""

from lint_support import ament_linter, copyright_paths, lint_script_verdict, PACKAGE
import pytest


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright(monkeypatch):
    ament_copyright, why_not = ament_linter('ament_copyright')
    if ament_copyright is None:
        verdict = lint_script_verdict('copyright', why_not)
        assert verdict is None, verdict
        return
    monkeypatch.chdir(PACKAGE)
    rc = ament_copyright.main(argv=copyright_paths(PACKAGE))
    assert rc == 0, 'some files lack a copyright line or a recognised license notice'
