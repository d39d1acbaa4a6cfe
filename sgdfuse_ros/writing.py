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
Writing files so that a failure costs one line, never a half-written file.

:func:`write_bytes` writes a whole file or nothing; :func:`is_write_failure` tells a failed
write (an ``OSError``, sqlite's "database or disk is full") from a bug and
:func:`write_failure` / :func:`os_error_line` say it in one line. Used by the bag replay and its
report, and by every ``sgdfuse`` command. :func:`file_digest` names a file's content (a weights
file's: the same name may hold other weights), for the keys of work done and of caches.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from .errors import error_line

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                errno.EFBIG)


def file_digest(path) -> str:
    """Return the SHA-256 of the file at ``path`` (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def is_write_failure(err: BaseException) -> bool:
    """Tell a failed write: an OSError, or sqlite's way of saying the same."""
    if isinstance(err, OSError):
        return True
    text = str(err).lower()
    return type(err).__name__ in ('OperationalError', 'DatabaseError') and any(
        word in text for word in ('disk', 'full', 'readonly', 'read-only', 'i/o'))


def write_failure(err: BaseException, what) -> str:
    """One line: what could not be written and why (``No space left on device`` ...)."""
    if isinstance(err, OSError) and err.strerror:
        code = errno.errorcode.get(err.errno, '')
        reason = f'{err.strerror} ({code})' if code else err.strerror
    else:
        reason = error_line(err, 160)
    return f'cannot write {what}: {reason}'


def os_error_line(err: OSError) -> str:
    """One line for an OSError naming a file: a failed write as such, anything else as is."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
        return write_failure(err, err.filename)
    code = errno.errorcode.get(err.errno, '')
    reason = err.strerror or error_line(err, 160)
    if err.strerror and code:
        reason = f'{err.strerror} ({code})'
    return f'{err.filename}: {reason}'


def write_bytes(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a temporary file beside it, then a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    try:
        with open(tmp, 'wb') as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
