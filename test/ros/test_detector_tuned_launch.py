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
Launch test: ``fusion.launch.py tuned_for:=detectors``, the node that feeds a detector.

The launch argument reaches the node as ``first_stage.tuned_for: detectors``; the node becomes
active with the detector-tuned first stage (/diagnostics names it), fuses a pair with its stamp,
and refuses a run-time change of the weights (read-only: a restart is needed), saying why.

Run by ``colcon test`` in a workspace where the package is built and sourced (the shipped
``models/first_stage_detectors.pt`` installed), or alone with ``launch_test
test/ros/test_detector_tuned_launch.py``; skipped where ROS 2 / launch_testing are not installed.
"""

import os
import sys
import unittest

import pytest

launch_testing = pytest.importorskip('launch_testing')
pytest.importorskip('launch_testing.actions')
pytest.importorskip('launch_testing.asserts')
pytest.importorskip('launch_ros')
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('diagnostic_msgs.msg')
LaunchDescription = pytest.importorskip('launch').LaunchDescription
IncludeLaunchDescription = pytest.importorskip('launch.actions').IncludeLaunchDescription
PythonLaunchDescriptionSource = pytest.importorskip(
    'launch.launch_description_sources').PythonLaunchDescriptionSource
pytest.importorskip('sensor_msgs.msg')

# launch_test FILE adds no pytest paths: the probe is found beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ros_probe import diagnostic_values, Probe  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'fusion.launch.py')
NAMESPACE = '/tuned_test'
NODE = NAMESPACE + '/fusion_node'
DIAG_NAME = NODE.lstrip('/')
THERMAL = NAMESPACE + '/thermal/image_raw'
RGB = NAMESPACE + '/rgb/image_raw'
FUSED = NAMESPACE + '/fused/image'


@pytest.mark.launch_test
def generate_test_description():
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'namespace': NAMESPACE, 'device': 'cpu',
                          'tuned_for': 'detectors'}.items())
    return LaunchDescription([fusion, launch_testing.actions.ReadyToTest()])


class TestDetectorTunedNode(unittest.TestCase):
    """One probe node for all tests; they run in name order (test_1_... first)."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe('tuned_launch_probe')
        cls.probe.listen(FUSED, Image)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()
        rclpy.shutdown()

    def test_1_active_with_the_detector_tuned_first_stage(self):
        probe = self.probe
        self.assertEqual(probe.wait_active(NODE, FUSED), 'active')
        self.assertEqual(probe.get_parameter(NODE, 'first_stage.tuned_for'), 'detectors')
        status = probe.wait_diagnostics(DIAG_NAME, 'processing', timeout=30.0)
        self.assertIsNotNone(status, 'no processing status on /diagnostics')
        self.assertEqual(diagnostic_values(status)['first stage'],
                         'network (tuned for detectors)')

    def test_2_a_pair_comes_back_fused_with_its_stamp(self):
        probe = self.probe
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=100.0)
        fused = probe.send_pairs_lockstep(pubs, [100.0, 100.1, 100.2], FUSED)
        self.assertEqual(fused, [100.0, 100.1, 100.2])
        for pub in pubs:
            probe.node.destroy_publisher(pub)

    def test_3_the_weights_do_not_change_at_run_time(self):
        probe = self.probe
        result = probe.set_parameter(NODE, 'first_stage.tuned_for', 'images')
        self.assertFalse(result.successful, 'first_stage.tuned_for changed at run time')
        self.assertTrue(result.reason, 'refused without a reason')
        self.assertEqual(probe.get_parameter(NODE, 'first_stage.tuned_for'), 'detectors')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code_is_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
