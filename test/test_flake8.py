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

ament_flake8 does the checking where it is usable (`colcon test`); elsewhere scripts/lint.sh
runs flake8 with the same settings and plugins (test/lint_support.py). Never skipped.
"""

from lint_support import ament_linter, flake8_argv, lint_script_verdict, PACKAGE
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    ament_flake8, why_not = ament_linter('ament_flake8')
    if ament_flake8 is None:
        verdict = lint_script_verdict('flake8', why_not)
        assert verdict is None, verdict
        return
    monkeypatch.chdir(PACKAGE)  # ament_flake8 checks, and skips hidden folders of, the cwd
    # our copy of ament's configuration adds jobs = 1: no worker processes (forks)
    rc, errors = ament_flake8.main_with_errors(argv=flake8_argv())
    assert rc == 0, '%d flake8 violations:\n%s' % (len(errors), '\n'.join(errors))
