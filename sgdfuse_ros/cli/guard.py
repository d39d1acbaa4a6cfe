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

- :class:`StopRequest`: SIGINT, SIGTERM and SIGHUP, for every command (the dispatcher installs
  it): before a command's work begins a signal stops it at once (:class:`StopNow`); once begun,
  the running loop stops at its next frame or step boundary, the command closes its outputs,
  writes its report marked as interrupted and raises :class:`Interrupted`, which the dispatcher
  turns into one line and exit status 130 / 143 / 129. Further signals abandon at most the
  frame or step in progress, never the closing work.
- :func:`check_output_dir`, :func:`check_output_file`: output paths checked before any work (an
  existing file where a folder is needed, a parent that is a file, a place this process cannot
  write), one :class:`InputError` line each.
- a failed write as one line: :mod:`sgdfuse_ros.writing` (library code uses it too).

Option values are checked at parse time by the argparse ``type=`` functions of
:mod:`sgdfuse_ros.cli.values` (re-exported here for older imports).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import Optional, Sequence


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: 'SIGINT', signal.SIGTERM: 'SIGTERM', signal.SIGHUP: 'SIGHUP'}


def signal_name(signum: Optional[int]) -> str:
    return SIGNAL_NAMES.get(signum, f'signal {signum}')


class Interrupted(Exception):
    """A command stopped by a signal after saving its work; ``status`` is 128 + the signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = int(signum)
        self.status = 128 + int(signum)


class StopNow(BaseException):
    """
    Raised by a stop signal where nothing is cut by stopping at once.

    That is before a command has begun its work (:meth:`StopRequest.protect`), or, for a second
    signal, inside a step marked as abandonable (:meth:`StopRequest.abandonable`). A
    ``BaseException``, so that no ``except Exception`` of a frame's error handling swallows it.
    """

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = int(signum)
        self.status = 128 + int(signum)


class StopRequest:
    """
    The one stop mechanism of every command: SIGINT, SIGTERM and SIGHUP.

    The dispatcher installs it around the command (:meth:`installed`). Until the command calls
    :meth:`protect` (when it starts writing what a cut would corrupt: a bag, a report, a
    checkpoint), a signal raises :class:`StopNow` at once. From then on, to the end of the
    command, a signal only asks: ``requested`` turns true and the command stops at its next step
    boundary, closes its outputs, writes its report and raises :meth:`interrupted`. A further
    signal raises :class:`StopNow` only inside :meth:`abandonable` (the work of one frame or one
    training step, which is then dropped whole); anywhere else -- closing a bag, writing a
    report or a checkpoint -- it is deferred, so no number of signals corrupts an output.

    A signal that is ignored when the command starts (``nohup``; a background job of a
    non-interactive shell ignores SIGINT) stays ignored. Only the main thread can install
    handlers; elsewhere (a command's function called from a worker thread) the object never
    reports a request.
    """

    def __init__(self, signals: Sequence[int] = STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: Optional[int] = None
        self.received = 0          # stop signals received
        self.protecting = False    # the command's work has begun: signals are deferred
        self.handled = False       # the command reported the stop itself
        self._abandonable = False  # inside abandonable(): a further signal abandons the step
        self._previous = {}
        self._event = threading.Event()

    # --- the handler -------------------------------------------------------------------------
    def _handle(self, signum, frame) -> None:
        self.received += 1
        first = self.signum is None
        if first:
            self.signum = signum
            self._event.set()
            if not self.protecting:
                raise StopNow(signum)
        elif self._abandonable:
            self._abandonable = False  # at most one StopNow per abandonable step
            raise StopNow(self.signum)
        # else: the closing work in progress is never cut; the first signal is being obeyed

    def install(self) -> 'StopRequest':
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.signals:
            previous = signal.getsignal(sig)
            if previous == signal.SIG_IGN:
                continue  # nohup, or a background job: the caller chose to ignore it
            self._previous[sig] = previous
            signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def __enter__(self) -> 'StopRequest':
        """Install and protect at once (a command run without the dispatcher)."""
        return self.install().protect()

    def __exit__(self, *exc) -> bool:
        self.uninstall()
        return False

    # --- what a command uses -----------------------------------------------------------------
    def protect(self) -> 'StopRequest':
        """From now to the end of the command, signals ask to stop; they never cut."""
        self.protecting = True
        return self

    def abandonable(self, work, *args, **kwargs):
        """
        Run one step of work that a further signal may abandon; return ``(result, abandoned)``.

        Only a signal after the first abandons (the first asks the loop to stop after this
        step); the step is then dropped whole, ``result`` is None. The caller keeps its books.
        """
        try:
            self._abandonable = True
            result = work(*args, **kwargs)
            self._abandonable = False
            return result, False
        except StopNow:
            self._abandonable = False
            return None, True

    def wait(self, timeout: Optional[float]) -> bool:
        """Sleep until a stop is requested or ``timeout`` passes; return ``requested``."""
        return self._event.wait(timeout)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal_name(self.signum)

    def interrupted(self, message: str) -> Interrupted:
        self.handled = True
        return Interrupted(self.signum, f'interrupted by {self.name}: {message}')


_CURRENT: Optional[StopRequest] = None


def stop_request() -> StopRequest:
    """Return the stop request the dispatcher installed (an inert one without a dispatcher)."""
    return _CURRENT if _CURRENT is not None else StopRequest(())


class installed:  # noqa: N801 (used as a context manager, like a function)
    """
    ``with installed() as stop:``: the dispatcher's stop request for one command.

    ``restore``: put the previous handlers back at the end (a command run from Python). Left
    False (the command line), the stop signals are ignored from then on: the command is done
    and its line printed, and a third Ctrl-C while the interpreter shuts down (which resets
    Python-level handlers to the default) cannot turn a clean exit into a death by signal.
    """

    def __init__(self, restore: bool = True):
        self.restore = restore

    def __enter__(self) -> StopRequest:
        global _CURRENT
        self.previous = _CURRENT
        self.stop = _CURRENT = StopRequest().install()
        self.streams = _tolerate_closed_streams()
        return self.stop

    def __exit__(self, *exc) -> bool:
        global _CURRENT
        self.stop.protect()
        if not self.restore:
            for sig in list(self.stop._previous):
                signal.signal(sig, signal.SIG_IGN)
            return False
        self.stop.uninstall()
        _CURRENT = self.previous
        _restore_streams(self.streams)
        return False


# --- stdout / stderr whose reader is gone ----------------------------------------------------

class _TolerantStream:
    """
    A text stream whose reader may be gone: a closed terminal or SSH session, a dead ``| tee``.

    A write that fails with EIO or EPIPE points the file descriptor at /dev/null and goes on,
    so the closing work after a SIGHUP (a bag's metadata, a report) is never lost to a message
    nobody can read.
    """

    def __init__(self, stream):
        self._stream = stream

    def _silence(self) -> None:
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except OSError as err:
            if err.errno not in (errno.EIO, errno.EPIPE):
                raise
            self._silence()
            try:
                return call(*args)
            except OSError:
                return None

    def write(self, text):
        return self._guarded(self._stream.write, text)

    def flush(self):
        return self._guarded(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _tolerate_closed_streams():
    saved = (sys.stdout, sys.stderr)
    if sys.stdout is not None and not isinstance(sys.stdout, _TolerantStream):
        sys.stdout = _TolerantStream(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, _TolerantStream):
        sys.stderr = _TolerantStream(sys.stderr)
    return saved


def _restore_streams(saved) -> None:
    sys.stdout, sys.stderr = saved
