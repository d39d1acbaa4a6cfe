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

"""Waiting in tests for something another thread or process does, by polling (no fixed sleeps)."""

import signal
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def as_at_a_terminal():
    """
    Give a child process the stop signals' default actions (``preexec_fn``).

    A test that stops a command with Ctrl-C plays a user at a terminal. A suite started in the
    background of a non-interactive shell, or under nohup, has SIGINT (or SIGHUP) ignored, every
    child inherits that, and the commands rightly leave an ignored signal ignored: without this the
    test would measure how the suite was started, not the command.
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def wait_until(condition, what: str = 'condition', timeout: float = 20.0, poll: float = 0.01):
    """Poll ``condition`` until it is true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'timed out after {timeout} s waiting for {what}'
        time.sleep(poll)
