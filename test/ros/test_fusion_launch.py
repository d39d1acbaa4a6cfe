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

"""
Launch test: ``fusion.launch.py`` starts the node, which becomes active.

It then publishes /diagnostics (skipped where ROS 2 / launch_testing are not installed).
"""

import os
import time
import unittest

import pytest

launch_testing = pytest.importorskip('launch_testing')
pytest.importorskip('launch_ros')
rclpy = pytest.importorskip('rclpy')

launch = pytest.importorskip('launch')
pytest.importorskip('launch_testing.actions')
IncludeLaunchDescription = pytest.importorskip('launch.actions').IncludeLaunchDescription
PythonLaunchDescriptionSource = pytest.importorskip(
    'launch.launch_description_sources').PythonLaunchDescriptionSource

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'fusion.launch.py')


@pytest.mark.launch_test
def generate_test_description():
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'namespace': 'launch_test', 'device': 'cpu'}.items())
    return launch.LaunchDescription([fusion, launch_testing.actions.ReadyToTest()])


class TestFusionLaunch(unittest.TestCase):

    def test_node_reports_diagnostics(self):
        from diagnostic_msgs.msg import DiagnosticArray

        rclpy.init()
        node = rclpy.create_node('fusion_launch_probe')
        seen = []
        node.create_subscription(DiagnosticArray, '/diagnostics', seen.append, 10)
        try:
            deadline = time.monotonic() + 30.0
            while not any('launch_test/fusion_node' in s.name for a in seen for s in a.status):
                self.assertLess(time.monotonic(), deadline, 'no diagnostics from the node')
                rclpy.spin_once(node, timeout_sec=0.1)
            processing = [s for a in seen for s in a.status if s.name.endswith('processing')]
            self.assertTrue(any(kv.key == 'device' and kv.value == 'cpu'
                                for s in processing for kv in s.values))
        finally:
            node.destroy_node()
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
