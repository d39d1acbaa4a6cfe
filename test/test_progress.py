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

"""The one progress reporter (``sgdfuse_ros.progress``): the commands' bars and training's log."""

from __future__ import annotations

import io

from sgdfuse_ros.progress import format_duration, Progress


class Clock:

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tty(io.StringIO):

    def isatty(self):
        return True


def test_format_duration():
    assert format_duration(75.2) == '1:15'
    assert format_duration(3725) == '1:02:05'
    assert format_duration(None) == '?' and format_duration(float('inf')) == '?'


def test_terminal_bar_shows_count_rate_and_time_left():
    clock, out = Clock(), Tty()
    bar = Progress(total=10, label='replay', unit='pairs', stream=out, clock=clock, refresh_s=0)
    clock.now = 2.0
    bar.update(4)
    line = out.getvalue().split('\r')[-1]
    assert '4/10' in line and '2.0 pairs/s' in line and 'left 0:03' in line
    clock.now = 5.0
    bar.update(6)
    bar.done('all fused')
    final = out.getvalue().splitlines()[-1]
    assert final.endswith('replay: 10 pairs in 0:05, 2.00 pairs/s (all fused)')


def test_not_a_terminal_writes_only_the_final_line():
    clock, out = Clock(), io.StringIO()
    with Progress(total=3, label='make-bag', stream=out, clock=clock) as bar:
        for _ in range(3):
            clock.now += 1
            bar.update()
    assert out.getvalue() == 'make-bag: 3 it in 0:03, 1.00 it/s\n'


def test_quiet_writes_nothing_even_on_a_terminal():
    out = Tty()
    with Progress(total=3, stream=out, quiet=True) as bar:
        bar.update(3)
        bar.note('hello')
    assert out.getvalue() == ''


def test_unknown_total_shows_count_and_rate():
    clock, out = Clock(), Tty()
    bar = Progress(total=None, label='x', unit='msgs', stream=out, clock=clock, refresh_s=0)
    clock.now = 4.0
    bar.update(8)
    assert '8 msgs 2.0 msgs/s elapsed 0:04' in out.getvalue()
    assert bar.remaining_s is None


def test_redraws_are_rate_limited():
    clock, out = Clock(), Tty()
    bar = Progress(total=1000, stream=out, clock=clock, refresh_s=1.0)
    for i in range(100):
        clock.now = i * 0.01
        bar.update()
    assert out.getvalue().count('\r') == 1  # only the first update drew within 1 s


def test_a_resumed_training_log_gets_a_line_per_refresh_with_its_eta():
    clock, out = Clock(), io.StringIO()  # a log file, not a terminal
    bar = Progress(total=100, stream=out, clock=clock, refresh_s=1.0, start=40, always=True,
                   left='ETA')
    clock.now = 2.0
    bar.update(10, text='loss 0.5')  # 10 steps in 2 s since the resume: 5 it/s, 50 left
    assert out.getvalue() == '[############............] 50/100 5.0 it/s ETA 0:10 loss 0.5\n'
    clock.now = 2.5
    bar.update(1)  # within refresh_s of the last line: not written
    bar.update(0, force=True)  # the last step is always written
    assert out.getvalue().count('\n') == 2 and out.getvalue().endswith('loss 0.5\n')
