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

"""Shared fixtures: the RoadScene folder ($SGDFUSE_DATA, else ../shared/data/roadscene)."""

import pytest

from sgdfuse_ros.eval.datasets import default_data_dir


@pytest.fixture(scope='session')
def roadscene():
    path = default_data_dir()
    if path is None or not (path / 'ir').is_dir():
        pytest.skip('RoadScene data not found: set SGDFUSE_DATA to the roadscene folder')
    return path
