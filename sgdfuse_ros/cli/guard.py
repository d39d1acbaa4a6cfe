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
What every offline command shares so that no user action loses work.

- :class:`StopRequest`: SIGINT and SIGTERM ask the running loop to stop at the next frame
  boundary (a second signal stops at once); the command then closes its outputs, writes its
  report marked as interrupted and raises :class:`Interrupted`, which the dispatcher turns into
  one line and exit status 130 (SIGINT) or 143 (SIGTERM).
- :func:`check_output_dir`, :func:`check_output_file`: output paths checked before any work (an
  existing file where a folder is needed, a parent that is a file, a place this process cannot
  write), one :class:`InputError` line each.
- :func:`write_failure`: a failed write (``ENOSPC``, a read-only file system, sqlite's "database
  or disk is full") as one line.
- argparse ``type=`` functions that refuse impossible option values at parse time.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
from pathlib import Path
import re
import signal
import tempfile
import threading
from typing import Optional, Sequence

from ..errors import error_line, InputError

SIGNAL_NAMES = {signal.SIGINT: 'SIGINT', signal.SIGTERM: 'SIGTERM'}


class Interrupted(Exception):
    """A command stopped by a signal after saving its work; ``status`` is 128 + the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = int(signum)
        self.status = 128 + int(signum)


class StopRequest:
    """
    ``with StopRequest() as stop: for item in items: if stop.requested: break``.

    Only the main thread can install handlers; elsewhere (a test calling a command's function
    from a worker thread) the object never reports a request.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)):
        self.signals = tuple(signals)
        self.signum: Optional[int] = None
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> 'StopRequest':
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(self.signum, f'signal {self.signum}')

    def interrupted(self, message: str) -> Interrupted:
        return Interrupted(self.signum, f'interrupted by {self.name}: {message}')


# --- output paths ---------------------------------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def _check_writable_folder(folder: Path, option: str, target: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder, prefix='.sgdfuse-write-check-'):
            pass
    except OSError as err:
        raise InputError(f'{option} {target}: cannot write in {folder} '
                         f'({err.strerror or error_line(err, 160)})') from None


def check_output_dir(path, option: str = '--out', children: Sequence[str] = ()) -> Path:
    """``path`` is (or can be created as) a writable folder whose ``children`` are folders."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f'{option} {path} is a file; a folder is needed')
    anchor = _existing_ancestor(path)
    if anchor.exists() and not anchor.is_dir():
        raise InputError(f'{option} {path}: {anchor} is a file, not a folder')
    for child in children:
        if (path / child).exists() and not (path / child).is_dir():
            raise InputError(f'{option} {path}: {path / child} is a file; this command writes '
                             f'a folder there')
    _check_writable_folder(anchor, option, path)
    return path


def check_output_file(path, option: str) -> Path:
    """``path`` is (or can be created as) a writable file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f'{option} {path} is a folder; a file name is needed')
    anchor = _existing_ancestor(path.parent)
    if anchor.exists() and not anchor.is_dir():
        raise InputError(f'{option} {path}: {anchor} is a file, not a folder')
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f'{option} {path} is not writable')
    _check_writable_folder(anchor, option, path)
    return path


# --- failed writes --------------------------------------------------------------------------

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                errno.EFBIG)


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


# --- option values ----------------------------------------------------------------------------


def int_at_least(minimum: int):
    """Argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
        return value
    parse.__name__ = f'integer >= {minimum}'
    return parse


def float_range(low: float = -math.inf, high: float = math.inf, low_open: bool = False):
    """Argparse type: a finite number in [low, high] (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
        if not math.isfinite(value) or value > high or value < low or (
                low_open and value == low):
            bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f'must be a finite number in {bound}, got {text}')
        return value
    parse.__name__ = 'number'
    return parse


_TOPIC = re.compile(r'~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*')


def topic_name(text: str) -> str:
    """Argparse type: a ROS 2 topic name that DDS accepts (rcl's rules, no substitutions)."""
    if not _TOPIC.fullmatch(text) or '__' in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid ROS 2 topic name (letters, digits and '_', separated by "
            f"'/'; no token starting with a digit, no '//', no trailing '/', no '__')")
    return text


def int_in(low: int, high: int):
    """Argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        value = int_at_least(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f'must be <= {high}, got {value}')
        return value
    parse.__name__ = f'integer in [{low}, {high}]'
    return parse
