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
Launch test: the alignment status of /diagnostics, from another process.

``fusion.launch.py`` with a parameter file that scores every pair (``diagnostics.alignment_every:
1``) and fuses with the classical first stage (fast). Registered pairs make the status learn its
running level and then say ``aligned`` (OK); pairs whose thermal image is moved by a sixth of
the width (a camera knocked out of place) turn it to WARN, with the warning counted. Nothing
reads the warm targets at first (the node does not select them); a reader of
``semantic/detections`` that arrives later gets them from the next pairs on, with their stamps.

Run by ``colcon test`` in a workspace where the package is built and sourced; skipped where
ROS 2 / launch_testing are not installed.
"""

import os
import sys
import tempfile
import unittest

import numpy as np
import pytest

launch_testing = pytest.importorskip('launch_testing')
pytest.importorskip('launch_testing.actions')
pytest.importorskip('launch_ros')
rclpy = pytest.importorskip('rclpy')
DiagnosticStatus = pytest.importorskip('diagnostic_msgs.msg').DiagnosticStatus
Detection2DArray = pytest.importorskip('vision_msgs.msg').Detection2DArray
LaunchDescription = pytest.importorskip('launch').LaunchDescription
IncludeLaunchDescription = pytest.importorskip('launch.actions').IncludeLaunchDescription
PythonLaunchDescriptionSource = pytest.importorskip(
    'launch.launch_description_sources').PythonLaunchDescriptionSource
pytest.importorskip('sensor_msgs.msg')

# launch_test FILE adds no pytest paths: the probe is found beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ros_probe import diagnostic_values, Probe, stamp_s, WIDTH  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'fusion.launch.py')
NAMESPACE = '/alignment_test'
NODE = NAMESPACE + '/fusion_node'
DIAG_NAME = NODE.lstrip('/')
THERMAL = NAMESPACE + '/thermal/image_raw'
RGB = NAMESPACE + '/rgb/image_raw'
FUSED = NAMESPACE + '/fused/image'
DETECTIONS = NAMESPACE + '/semantic/detections'
PARAMS = """/**:
  ros__parameters:
    first_stage:
      type: laplacian
    refiner:
      steps: 0
    diagnostics:
      alignment_every: 1
      period_s: 0.2
"""


@pytest.mark.launch_test
def generate_test_description():
    handle, path = tempfile.mkstemp(suffix='.yaml', prefix='sgdfuse_alignment_')
    with os.fdopen(handle, 'w') as out:
        out.write(PARAMS)
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'namespace': NAMESPACE, 'device': 'cpu', 'params_file': path}.items())
    return LaunchDescription([fusion, launch_testing.actions.ReadyToTest()])


class TestAlignmentDiagnostics(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe('alignment_probe')
        cls.probe.listen(FUSED, Image)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()
        rclpy.shutdown()

    def test_aligned_then_knocked(self):
        probe = self.probe
        self.assertTrue(probe.spin_until(lambda: probe.node.count_publishers(FUSED) > 0, 120.0),
                        'the node never created its outputs')
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=100.0)
        fused = probe.send_pairs_lockstep(pubs, [100.0 + k / 10 for k in range(30)], FUSED,
                                          timeout=30.0)
        self.assertGreaterEqual(len(fused), 25)
        status = probe.wait_diagnostics(
            DIAG_NAME, 'alignment', lambda s: s.message.startswith('aligned'), timeout=30.0)
        self.assertIsNotNone(status, 'the alignment status never said aligned')
        self.assertEqual(status.level, DiagnosticStatus.OK)
        self.assertGreaterEqual(int(diagnostic_values(status)['pairs checked']), 20)

        probe.thermal = np.roll(probe.thermal, WIDTH // 6, axis=1)  # the camera moved
        probe.send_pairs_lockstep(pubs, [200.0 + k / 10 for k in range(10)], FUSED,
                                  timeout=30.0)
        status = probe.wait_diagnostics(
            DIAG_NAME, 'alignment', lambda s: s.level == DiagnosticStatus.WARN, timeout=30.0)
        self.assertIsNotNone(status, 'no WARN after the thermal image moved')
        self.assertIn('a camera may have moved', status.message)
        self.assertEqual(diagnostic_values(status)['warnings'], '1')

    def test_detections_start_when_a_reader_arrives(self):
        probe = self.probe
        self.assertEqual(probe.heard[DETECTIONS], [])
        probe.listen(DETECTIONS, Detection2DArray)
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=300.0)
        stamps = [round(300.0 + k / 10, 6) for k in range(10)]
        fused = probe.send_pairs_lockstep(pubs, stamps, FUSED, timeout=30.0)
        self.assertGreaterEqual(len(fused), 8)

        def heard():
            return {round(stamp_s(m.header.stamp), 6): m for m in probe.heard[DETECTIONS]}
        # the node matches the new reader within a pair or two: the last pairs have detections
        self.assertTrue(probe.spin_until(lambda: set(fused[-5:]) <= set(heard()), 20.0),
                        f'no detections for some of {fused[-5:]}: heard {sorted(heard())}')
        self.assertLessEqual(set(heard()), set(probe.fused_stamps(FUSED)))  # a fused pair's
        ids = [sorted(d.id for d in heard()[seconds].detections) for seconds in fused[-5:]]
        self.assertTrue(all(ids), f'a pair without a warm target: {ids}')
        self.assertEqual(ids, [ids[0]] * len(ids))  # tracked from frame to frame
