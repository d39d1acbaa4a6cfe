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

"""``sgdfuse demo --bag``: one command, a short sample bag to play into the node."""

import json
import os
from pathlib import Path

import pytest
from sgdfuse_ros import messages as m
from sgdfuse_ros.cli import main as cli

INPUTS = {'/' + m.INPUT_TOPICS['thermal']: 'sensor_msgs/msg/Image',
          '/' + m.INPUT_TOPICS['visible']: 'sensor_msgs/msg/Image',
          '/' + m.CAMERA_INFO_TOPIC: 'sensor_msgs/msg/CameraInfo'}


def bag_summary(path: Path):
    """{topic: (type, message count)} and the duration in seconds, from the bag's index."""
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        return topics, reader.duration / 1e9


def test_sample_bag_from_the_generated_pairs(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('SGDFUSE_DATA', raising=False)  # else the bag comes from that data
    out = tmp_path / 'demo'
    assert cli(['demo', '--bag', '--pairs', '2', '--out', str(out), '--quiet']) == 0
    printed = capsys.readouterr().out
    bag = out / 'sample_bag'
    assert f'sample bag: {bag} (50 frames, 5 s at 10 Hz, from the generated sample (2 ' \
           f'pairs))' in printed
    assert f'ros2 bag play {bag} --clock --loop' in printed
    assert 'ros2 launch sgdfuse_ros fusion.launch.py use_sim_time:=true' in printed
    topics, duration = bag_summary(bag)
    for topic, msgtype in INPUTS.items():  # the node's input topics, without remapping
        assert topics[topic] == (msgtype, 50), topic
    assert 4.8 <= duration <= 5.1, duration
    # only the bag (and the pairs it came from): none of the full demo's outputs
    assert sorted(p.name for p in out.iterdir()) == ['sample', 'sample_bag']


@pytest.mark.skipif(not os.environ.get('SGDFUSE_DATA'), reason='SGDFUSE_DATA not set')
def test_sample_bag_from_roadscene_test_split(tmp_path, capsys):
    data = Path(os.environ['SGDFUSE_DATA'])
    test_pairs = len(json.loads((data / 'split.json').read_text())['test'])
    frames = test_pairs * -(-50 // test_pairs)
    out = tmp_path / 'demo'
    assert cli(['demo', '--bag', '--data', str(data), '--out', str(out), '--quiet']) == 0
    assert f'from the RoadScene test split ({test_pairs} pairs)' in capsys.readouterr().out
    topics, _ = bag_summary(out / 'sample_bag')
    for topic, msgtype in INPUTS.items():
        assert topics[topic] == (msgtype, frames), topic
    assert sorted(p.name for p in out.iterdir()) == ['sample_bag']
