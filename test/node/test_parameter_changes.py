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

"""Runtime and read-only parameter changes: validated whole, never clamped."""


from node_support import FakePipeline, make_core, send_pair
import pytest
from sgdfuse_ros.errors import ConfigError


def test_runtime_parameters_are_validated_not_clamped(scene):
    built = []

    def factory(config):
        built.append(config)
        return FakePipeline(config)

    core, t = make_core(factory=factory)
    core.configure()
    core.activate()
    with pytest.raises(ConfigError, match='above the maximum'):
        core.set_parameters({'sync.slop': 11.0})
    with pytest.raises(ConfigError, match='read-only'):
        core.set_parameters({'prior.source': 'none'})
    with pytest.raises(ConfigError, match='unknown parameter'):
        core.set_parameters({'sync.slopp': 0.1})
    with pytest.raises(ConfigError, match='below the minimum'):  # all or nothing
        core.set_parameters({'sync.slop': 0.03, 'sync.queue_size': 0})
    assert core.config['sync.slop'] == 0.02  # nothing applied from the rejected sets
    # node parameters apply at once, without rebuilding the pipeline
    core.set_parameters({'sync.slop': 0.03, 'output.encoding': 'mono8'})
    assert core.sync.slop == 0.03 and len(built) == 1
    send_pair(t, scene, 1.0)
    core.process_pending()
    assert t.sent('fused/image')[-1].encoding == 'mono8'
    # a pipeline parameter rebuilds the pipeline before the next frame
    core.set_parameters({'prior.thermal.k': 2.5})
    send_pair(t, scene, 2.0)
    core.process_pending()
    assert len(built) == 2 and built[-1]['prior.thermal.k'] == 2.5
    assert FakePipeline.instances[-2].closed
    core.shutdown()


def test_read_only_parameters_change_while_unconfigured():
    core, _ = make_core(factory=FakePipeline)
    core.set_parameters({'qos.depth': 7})
    core.configure()
    with pytest.raises(ConfigError, match='read-only'):
        core.set_parameters({'qos.depth': 8})
    assert core.config['qos.depth'] == 7
    core.shutdown()
