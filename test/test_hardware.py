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

"""The machine: thread counts to choose from and the no-spin wait policy of the process."""

import pytest

from sgdfuse_ros import hardware
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.hardware import prepare_process, thread_candidates


def test_candidates():
    assert thread_candidates(0, 2) == [1, 2]
    assert thread_candidates(0, 8) == [1, 4, 8]
    assert thread_candidates(3, 8) == [1, 3]
    assert thread_candidates(0, 1) == [1]


def test_prepare_process_sets_passive_wait_only_before_torch(monkeypatch):
    monkeypatch.setattr(hardware, '_PROCESS', {})  # as in a process that built no pipeline yet
    env = {}
    assert prepare_process('adaptive', env, modules={}) == 'PASSIVE'
    assert env['OMP_WAIT_POLICY'] == 'PASSIVE' and env['KMP_BLOCKTIME'] == '0'
    user = {'OMP_WAIT_POLICY': 'ACTIVE'}
    assert prepare_process('fixed', user, modules={}) == 'ACTIVE (set by the user)'
    assert user['OMP_WAIT_POLICY'] == 'ACTIVE'
    late = {}
    state = prepare_process('adaptive', late, modules={'torch': object()})
    assert 'OMP_WAIT_POLICY' not in late and 'before the pipeline' in state
    library = {}
    assert prepare_process('library', library, modules={}) == 'library default'
    assert library == {}
    with pytest.raises(ConfigError):
        prepare_process('spin', {}, modules={})
