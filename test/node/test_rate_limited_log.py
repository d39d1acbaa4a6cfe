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

"""One warning per key and period; the next one says how many were held back."""

import logging

from sgdfuse_ros.node.rate_limited_log import RateLimitedLog


def test_warnings_per_key_are_rate_limited_and_counted(caplog):
    now = [0.0]
    log = RateLimitedLog(logging.getLogger('test.rate_limited'), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, 'test.rate_limited'):
        assert log.warning('a', 'first')
        assert not log.warning('a', 'held back')
        assert log.warning('b', 'another key')
        now[0] = 10.5
        assert log.warning('a', 'again')
    assert [r.getMessage() for r in caplog.records] == [
        'first', 'another key', 'again (1 more since the last warning)']
