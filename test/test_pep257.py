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
Docstrings of the whole package: pydocstyle with ament's conventions.

ament_pep257 does the checking where it is usable (`colcon test`); elsewhere scripts/lint.sh
runs pydocstyle with ament_pep257's defaults (test/lint_support.py). Never skipped.
"""

from lint_support import ament_linter, lint_script_verdict, PACKAGE
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(monkeypatch):
    ament_pep257, why_not = ament_linter('ament_pep257')
    if ament_pep257 is None:
        verdict = lint_script_verdict('pep257', why_not)
        assert verdict is None, verdict
        return
    monkeypatch.chdir(PACKAGE)
    rc = ament_pep257.main(argv=['.', 'test'])
    assert rc == 0, 'docstring convention violations (see the output above)'
