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

"""Building the pipeline on activate: a failure leaves the node inactive with one line."""


from node_support import make_core
import pytest
from sgdfuse_ros.errors import ConfigError


def test_a_pipeline_that_fails_to_load_leaves_the_node_inactive():
    def factory(config):
        raise RuntimeError('CUDA out of memory')

    core, t = make_core(factory=factory)
    core.configure()
    with pytest.raises(ConfigError, match='could not build the fusion pipeline: RuntimeError'):
        core.activate()
    assert core.state == 'inactive' and not any(t.subscriptions.values())
    core.shutdown()
