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

"""The node tests' shared scene: one synthetic thermal (mono16) / visible pair."""

from node_support import H, W
import numpy as np
import pytest
from sgdfuse_ros.eval.synthetic_pairs import make_pair


@pytest.fixture(scope='module')
def scene():
    ir, vis, targets = make_pair(5, (W, H))
    return (7000 + 60 * ir.astype(np.uint16)).astype(np.uint16), vis, targets
