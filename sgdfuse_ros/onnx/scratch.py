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
Where ``backend: onnx`` keeps the graphs it exports at configure time.

One folder per user in the temporary directory, ``sgdfuse_onnx-<uid>``, reused by every run:
each process works in its own ``<pid>-XXXX`` folder inside it, removed when the stage is closed
or the process exits; a folder left by a process that was killed (SIGKILL, a power loss) is
removed by the next run that makes one. A parent that is not this user's private folder (made
by someone else, a symbolic link, open to others) is not used: the folder is then a plain
temporary one.
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import stat
import tempfile


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def sweep_scratch(folder: Path, prefix: str) -> None:
    """Remove ``prefix<pid>-*`` folders in ``folder`` whose process is gone (a killed run)."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid = entry.name[len(prefix):].split('-', 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / f'sgdfuse_onnx-{os.getuid()}'


def _private(folder: Path) -> bool:
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o077)


def scratch_dir() -> tempfile.TemporaryDirectory:
    """Make a folder for this process's exported graphs (``.name``; ``cleanup()`` removes it)."""
    root = scratch_root()
    try:
        root.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        pass
    if not _private(root):
        return tempfile.TemporaryDirectory(prefix='sgdfuse_onnx_')
    sweep_scratch(root, '')
    return tempfile.TemporaryDirectory(prefix=f'{os.getpid()}-', dir=root)
