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

import pytest
from sgdfuse_ros.config import (default_config_path, first_stage_path, flatten, load_config,
                                models_dir, parse_override)
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.parameters import defaults, render_yaml, SPECS
import yaml


def test_shipped_config_documents_every_parameter():
    document = yaml.safe_load(default_config_path().read_text())
    flat = flatten(document['/**']['ros__parameters'])
    # empty-list defaults stay commented out: ROS 2 parameter files cannot hold an empty list
    unset = {name for name, spec in SPECS.items() if spec.default == []}
    assert set(flat) == set(SPECS) - unset
    for name in unset:
        assert f"# {name.split('.')[-1]}: []" in default_config_path().read_text()
    text = default_config_path().read_text()
    for spec in SPECS.values():  # each parameter has its description as a comment
        assert spec.description.split()[0] in text


def test_shipped_config_is_the_rendered_table():
    assert default_config_path().read_text() == render_yaml()


def test_defaults_load():
    assert load_config() == defaults()


def test_overrides_validated_not_clamped(tmp_path):
    with pytest.raises(ConfigError, match='above the maximum'):
        load_config(overrides={'agc.high_percentile': 101})
    with pytest.raises(ConfigError, match='not one of'):
        load_config(overrides={'prior.source': 'magic'})
    with pytest.raises(ConfigError, match='did you mean output.width'):
        load_config(overrides={'output.widht': 10})
    with pytest.raises(ConfigError, match='expected int'):
        load_config(overrides={'output.width': 1.5})
    with pytest.raises(ConfigError, match='9 numbers'):
        load_config(overrides={'registration.homography': [1, 0, 0]})


def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_config(tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('a: [unclosed\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert '\n' not in str(err.value)
    nosection = tmp_path / 'nosection.yaml'
    nosection.write_text('device: cpu\n')
    with pytest.raises(ConfigError, match='ros__parameters'):
        load_config(nosection)


def test_node_named_section_and_nesting(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('fusion_node:\n  ros__parameters:\n    output: {width: 320}\n'
                    '    use_sim_time: true\n')
    config = load_config(path)
    assert config['output.width'] == 320
    assert config['output.height'] == SPECS['output.height'].default


def test_parse_override():
    assert parse_override('refiner.steps=2') == ('refiner.steps', 2)
    assert parse_override('registration.homography=[1,0,0,0,1,0,0,0,1]')[1][0] == 1
    with pytest.raises(ConfigError):
        parse_override('nonsense')


def test_first_stage_tuned_for_picks_a_shipped_file_and_an_explicit_path_wins(tmp_path):
    assert first_stage_path(load_config()) == models_dir() / 'first_stage.pt'
    detect = load_config(overrides={'first_stage.tuned_for': 'detectors'})
    assert first_stage_path(detect) == models_dir() / 'first_stage_detectors.pt'
    assert first_stage_path(detect).is_file()  # shipped, not only named
    own = tmp_path / 'mine.pt'
    assert first_stage_path(load_config(overrides={'first_stage.tuned_for': 'detectors',
                                                   'first_stage.weights': str(own)})) == own
    with pytest.raises(ConfigError, match='first_stage.tuned_for'):
        load_config(overrides={'first_stage.tuned_for': 'people'})
