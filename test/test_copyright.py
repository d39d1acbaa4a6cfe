# Copyright 2015 Open Source Robotics Foundation, Inc.
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

"""ament_copyright (needs ROS 2's linters).

Checks the files that carry the Apache-2.0 header so far: the ROS front end (node, transport,
launch file) and its tests. Add files here as they get the header; ``['.', 'test']`` checks all.
"""

from pathlib import Path

import pytest

ament_copyright = pytest.importorskip("ament_copyright.main")

ROOT = Path(__file__).resolve().parents[1]
WITH_HEADER = [
    "sgdfuse_ros/ros/__init__.py",
    "sgdfuse_ros/ros/fusion_node.py",
    "sgdfuse_ros/ros/rclpy_transport.py",
    "launch/fusion.launch.py",
    "test/test_ros_node.py",
    "test/test_fusion_launch.py",
    "test/test_flake8.py",
    "test/test_pep257.py",
    "test/test_copyright.py",
]


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    assert all((ROOT / path).is_file() for path in WITH_HEADER)
    rc = ament_copyright.main(argv=[str(ROOT / path) for path in WITH_HEADER])
    assert rc == 0, 'Found errors'

