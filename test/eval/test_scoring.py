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

"""The one percentile summary of the package (``eval.scoring.percentile_summary``)."""

from sgdfuse_ros.eval.scoring import percentile_summary


def test_percentile_summary_keys():
    out = percentile_summary([1, 2, 3, 4], ('p50', 'mean', 'max', 'n', 'median'), digits=2)
    assert out == {'p50': 2.5, 'mean': 2.5, 'max': 4.0, 'n': 4, 'median': 2.5}
