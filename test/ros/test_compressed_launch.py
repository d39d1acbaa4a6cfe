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
Launch test: image_transport's compressed outputs of ``fusion.launch.py``.

What a ROS user recording or streaming the node sees: ``fused/image/compressed`` and the
semantic images' ``/compressed`` twins are advertised as ``sensor_msgs/msg/CompressedImage``
(``output.compressed``, on by default), carry the format string image_transport's compressed
plugin writes (so ``republish``, rqt_image_view and Foxglove decode them), decode to the size of
the raw outputs, and carry the stamps of the pairs fused. Run as the other launch tests
(``colcon test``, or ``launch_test test/ros/test_compressed_launch.py``); skipped where ROS 2 /
launch_testing are not installed.
"""

import os
import sys
import unittest

import numpy as np
import pytest

launch_testing = pytest.importorskip('launch_testing')
pytest.importorskip('launch_testing.actions')
pytest.importorskip('launch_testing.asserts')
pytest.importorskip('launch_ros')
rclpy = pytest.importorskip('rclpy')
cv2 = pytest.importorskip('cv2')
LaunchDescription = pytest.importorskip('launch').LaunchDescription
IncludeLaunchDescription = pytest.importorskip('launch.actions').IncludeLaunchDescription
PythonLaunchDescriptionSource = pytest.importorskip(
    'launch.launch_description_sources').PythonLaunchDescriptionSource
pytest.importorskip('sensor_msgs.msg')

# launch_test FILE adds no pytest paths: the probe is found beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ros_probe import HEIGHT, Probe, stamp_s, WIDTH  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'fusion.launch.py')
NAMESPACE = '/compressed_test'
NODE = NAMESPACE + '/fusion_node'
THERMAL = '/compressed_test_cams/flir/image_raw'
RGB = '/compressed_test_cams/color/image_raw'
FUSED = NAMESPACE + '/fused/image'
# topic -> (format string, dtype after decoding, channels)
COMPRESSED = {
    FUSED + '/compressed': ('bgr8; jpeg compressed bgr8', np.uint8, 3),
    NAMESPACE + '/semantic/labels/compressed': ('mono16; png compressed ', np.uint16, 1),
    NAMESPACE + '/semantic/targets/compressed': ('mono8; png compressed ', np.uint8, 1),
    NAMESPACE + '/semantic/overlay/compressed': ('bgr8; jpeg compressed bgr8', np.uint8, 3),
}


@pytest.mark.launch_test
def generate_test_description():
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'namespace': NAMESPACE, 'device': 'cpu', 'thermal_topic': THERMAL,
                          'rgb_topic': RGB}.items())
    return LaunchDescription([fusion, launch_testing.actions.ReadyToTest()])


class TestCompressedOutputs(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe('compressed_launch_probe')
        cls.probe.listen(FUSED, Image)
        for topic in COMPRESSED:
            cls.probe.listen(topic, CompressedImage)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()
        rclpy.shutdown()

    def test_1_compressed_topics_are_advertised_as_compressed_images(self):
        probe = self.probe

        def advertised():
            types = dict(probe.node.get_topic_names_and_types())
            return all(types.get(topic) == ['sensor_msgs/msg/CompressedImage']
                       for topic in COMPRESSED)
        self.assertTrue(probe.spin_until(advertised, 120.0),
                        f'not all of {sorted(COMPRESSED)} advertised as CompressedImage')

    def test_2_compressed_outputs_arrive_decodable_with_the_pairs_stamps(self):
        probe = self.probe
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=100.0)
        stamps = [100.0 + i / 10 for i in range(5)]
        fused = probe.send_pairs_lockstep(pubs, stamps, FUSED)
        self.assertEqual(len(fused), 5)

        def all_heard():  # a compressed twin of a fused pair on every topic
            done = set(probe.fused_stamps(FUSED))
            return all(probe.heard[t] and round(stamp_s(probe.heard[t][-1].header.stamp), 6)
                       in done for t in COMPRESSED)
        sent = stamps[-1]

        def one_more():  # the node encodes a twin once it sees its subscriber: keep sending
            nonlocal sent
            sent += 0.1
            fused.extend(probe.send_pairs_lockstep(pubs, [sent], FUSED))
        self.assertTrue(probe.spin_until(all_heard, 60.0, step=one_more),
                        {t: len(probe.heard[t]) for t in COMPRESSED})
        fused_stamps = set(probe.fused_stamps(FUSED))
        for topic, (label, dtype, channels) in COMPRESSED.items():
            msg = probe.heard[topic][-1]
            self.assertEqual(msg.format, label, topic)
            self.assertIn(round(stamp_s(msg.header.stamp), 6), fused_stamps, topic)
            self.assertEqual(msg.header.frame_id, 'rgb_optical', topic)
            image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_UNCHANGED)
            self.assertIsNotNone(image, topic)
            self.assertEqual(image.dtype, dtype, topic)
            self.assertEqual(image.shape[:2], (HEIGHT, WIDTH), topic)
            self.assertEqual(1 if image.ndim == 2 else image.shape[2], channels, topic)
        raw = probe.heard[FUSED][-1]
        self.assertLess(len(probe.heard[FUSED + '/compressed'][-1].data), len(raw.data))
        for pub in pubs:
            probe.node.destroy_publisher(pub)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code_is_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
