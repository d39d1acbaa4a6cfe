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

"""The one way console entry points end on an error: a line on stderr and an exit status."""

import errno
import io

from sgdfuse_ros.cli.guard import Interrupted, StopNow
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.exits import exit_status


def _end(err):
    out = io.StringIO()
    return exit_status('sgdfuse replay', err, out), out.getvalue()


def test_each_kind_of_end_is_one_line_and_its_status():
    assert _end(ConfigError('refiner.steps must be >= 0')) == (
        2, 'sgdfuse replay: error: refiner.steps must be >= 0\n')
    full = OSError(errno.ENOSPC, 'No space left on device', '/out/report.md')
    status, line = _end(full)
    assert status == 2 and line.startswith('sgdfuse replay: error: ') and '/out/report.md' in line
    assert _end(Interrupted(2, 'interrupted by SIGINT; 3 pairs kept')) == (
        130, 'sgdfuse replay: interrupted by SIGINT; 3 pairs kept\n')
    assert _end(StopNow(15)) == (143, 'sgdfuse replay: interrupted by SIGTERM: stopped before '
                                      'it had written any result\n')
    assert _end(TimeoutError('no subscriber within 5 s')) == (
        3, 'sgdfuse replay: error: no subscriber within 5 s\n')
    assert _end(KeyboardInterrupt()) == (130, 'sgdfuse replay: interrupted\n')


def test_a_bug_is_not_swallowed():
    assert _end(ValueError('a bug')) == (None, '')
    assert _end(OSError('no file named')) == (None, '')
