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
The one progress reporter of the package: a small bar on stderr with count, rate and time left.

    with Progress(total=len(items), label="replay", quiet=args.quiet) as bar:
        for item in items:
            ...
            bar.update()
        bar.done("50 pairs fused")

The commands (``replay``, ``make-bag``, ``evaluate``, ``adapt``, ``register``) and the training
loop (:func:`sgdfuse_ros.training.loop.train`: ``bar.update(text=...)`` per step, a line of
its own every ``refresh_s`` with ``always=True`` and the time left labelled ``ETA``) use it.

On a terminal the bar redraws in place (at most ``refresh_s`` apart). When stderr is not a
terminal (CI logs, pipes) nothing is drawn while running and only the final line is written,
unless ``always`` (a long run whose log is read: one line per ``refresh_s``). ``quiet=True``
silences everything, the final line included. ``total`` may be None or 0 when the length is not
known in advance: then the line shows the count and the rate only.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``'1:15'``; ``3725`` -> ``'1:02:05'``; unknown -> ``'?'``."""
    if seconds is None or seconds != seconds or seconds == float('inf') or seconds < 0:
        return '?'
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


class Progress:
    """
    Count, rate and time left of a run of ``total`` items (None: not known).

    ``start``: items already done before this run (a resumed training); they count for the bar,
    not for the rate. ``left``: the word before the time left. ``text``: shown after the bar.
    """

    def __init__(self, total: Optional[int] = None, label: str = '', unit: str = 'it',
                 quiet: bool = False, stream: Optional[TextIO] = None, width: int = 24,
                 refresh_s: float = 0.1, clock=time.monotonic, start: int = 0,
                 always: bool = False, left: str = 'left'):
        self.total = int(total) if total else None
        self.label = label
        self.unit = unit
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.refresh_s = refresh_s
        self.clock = clock
        self.first = int(start)
        self.count = int(start)
        self.left = left
        self.text = ''
        self.start = clock()
        self._last_draw = float('-inf')
        self._drawn = False
        self._closed = False
        try:
            self.interactive = (not quiet) and bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.interactive = False
        self.always = bool(always) and not quiet

    # --- numbers ---------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return max(self.clock() - self.start, 0.0)

    @property
    def rate(self) -> float:
        """Items per second so far (0 before the first item)."""
        elapsed = self.elapsed
        done = self.count - self.first
        return done / elapsed if elapsed > 0 and done else 0.0

    @property
    def remaining_s(self) -> Optional[float]:
        """Seconds left at the current rate; None when unknown."""
        if not self.total or self.count <= self.first:
            return None
        rate = self.rate
        return max(self.total - self.count, 0) / rate if rate > 0 else None

    def line(self) -> str:
        """Return the text of the bar as it would be drawn now."""
        head = f'{self.label} ' if self.label else ''
        rate = f'{self.rate:.1f} {self.unit}/s'
        if self.total:
            fraction = min(self.count / self.total, 1.0)
            filled = int(round(fraction * self.width))
            bar = '#' * filled + '.' * (self.width - filled)
            left = self.remaining_s
            tail = f' {self.text}' if self.text else ''
            return (f'{head}[{bar}] {self.count}/{self.total} {rate} '
                    f"{self.left} {format_duration(left) if left is not None else '?'}{tail}")
        tail = f' {self.text}' if self.text else ''
        return (f'{head}{self.count} {self.unit} {rate} elapsed '
                f'{format_duration(self.elapsed)}{tail}')

    # --- drawing ---------------------------------------------------------------------------------
    def update(self, n: int = 1, text: Optional[str] = None, force: bool = False) -> None:
        """Count ``n`` more items (``text``: shown after the bar from now on)."""
        self.count += n
        if text is not None:
            self.text = text
        if not (self.interactive or self.always):
            return
        now = self.clock()
        if force or now - self._last_draw >= self.refresh_s or (
                self.total and self.count >= self.total):
            self._last_draw = now
            if self.interactive:
                self.stream.write('\r' + self.line() + '\x1b[K')
                self._drawn = True
            else:
                self.stream.write(self.line() + '\n')
            self.stream.flush()

    def note(self, text: str) -> None:
        """Print a line of text without breaking the bar (silent under quiet)."""
        if self.quiet:
            return
        if self._drawn:
            self.stream.write('\r\x1b[K')
        self.stream.write(text.rstrip('\n') + '\n')
        self._drawn = False
        self._last_draw = float('-inf')
        self.stream.flush()

    def done(self, summary: Optional[str] = None) -> None:
        """Finish: one final line (count, rate, elapsed, and ``summary``), unless quiet."""
        if self._closed:
            return
        self._closed = True
        if self.quiet:
            return
        if self._drawn:
            self.stream.write('\r\x1b[K')
        head = f'{self.label}: ' if self.label else ''
        tail = f' ({summary})' if summary else ''
        self.stream.write(f'{head}{self.count} {self.unit} in {format_duration(self.elapsed)}, '
                          f'{self.rate:.2f} {self.unit}/s{tail}\n')
        self.stream.flush()

    def __enter__(self) -> 'Progress':
        return self

    def close(self) -> None:
        """Stop without a final line (an error follows): leave the terminal on a fresh line."""
        if self._drawn and not self.quiet and not self._closed:
            self.stream.write('\n')
            self.stream.flush()
        self._closed = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.done()
        else:
            self.close()
