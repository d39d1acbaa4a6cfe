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
How every console entry point ends on an error: one line on stderr and an exit status.

``sgdfuse`` and its commands (:mod:`sgdfuse_ros.cli`), ``fusion_node``
(:mod:`sgdfuse_ros.ros.fusion_node`) and ``python -m sgdfuse_ros.transport.synthetic_camera``
hand what stopped them to :func:`exit_status`:

- a :class:`~sgdfuse_ros.errors.SgdfuseError`: status 2, ``PROG: error: <its one line>``;
- an ``OSError`` naming its file (a full disk, a read-only place): 2, ``PROG: error: <file>:
  <reason>``;
- a stop by a signal after the work was saved (an error with its ``status``, such as
  :class:`sgdfuse_ros.cli.guard.Interrupted`): 128 + the signal, ``PROG: <what was kept>``;
- a stop by a signal before any work began (:class:`sgdfuse_ros.cli.guard.StopNow`): 128 + the
  signal, ``PROG: interrupted by <signal>: stopped before it had written any result``;
- a ``TimeoutError`` (a wait that ran out): 3, ``PROG: error: <its message>``;
- ``KeyboardInterrupt`` where no handler of ours was installed: 130, ``PROG: interrupted``.

Anything else is a bug: :func:`exit_status` returns None and the caller lets it raise, traceback
and all.
"""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from .errors import SgdfuseError
from .writing import os_error_line


def exit_status(prog: str, err: BaseException,
                stream: Optional[TextIO] = None) -> Optional[int]:
    """Print the one line ``prog`` ends with on ``err``; return its exit status (None: a bug)."""
    status = getattr(err, 'status', None)
    if isinstance(err, SgdfuseError):
        line, code = f'error: {err}', 2
    elif isinstance(status, int) and isinstance(err, Exception):  # stopped, its work saved
        line, code = str(err), status
    elif isinstance(status, int) and not isinstance(err, KeyboardInterrupt):
        line, code = f'interrupted by {err}: stopped before it had written any result', status
    elif isinstance(err, OSError) and err.filename is not None:
        line, code = f'error: {os_error_line(err)}', 2
    elif isinstance(err, TimeoutError):
        line, code = f'error: {err}', 3
    elif isinstance(err, KeyboardInterrupt):  # SIGINT where no handler of ours was installed
        line, code = 'interrupted', 130
    else:
        return None
    print(f'{prog}: {line}', file=stream if stream is not None else sys.stderr)
    return code
