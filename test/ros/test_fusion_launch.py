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
Launch test: ``fusion.launch.py`` in a namespace, with remapped camera topics.

What a ROS user sees from another process: the node becomes active; camera pairs sent with
best-effort and with reliable QoS come back fused with their stamps and frame ids on every
output (fused image + camera info, labels, targets; the overlay only while subscribed);
``semantic/detections`` (vision_msgs/Detection2DArray) carries each pair's stamp and keeps its
targets' ids over a sequence;
/diagnostics balances its books; ``ros2 param set`` is accepted or refused with the reason;
``colour.warm_tint`` reddens the warm parts of the fused image and, set to 0 at run time, leaves
the brightness as it was;
deactivate stops the outputs and activate resumes them; the graph shows the namespaced outputs
and the remapped inputs; on shutdown the node exits with 0.

Run by ``colcon test`` (pytest + the launch_testing plugin) in a workspace where the package is
built and sourced, or alone with ``launch_test test/ros/test_fusion_launch.py``; skipped where
ROS 2 / launch_testing are not installed. Each batch of counted pairs starts after a handshake
(ros_sync): priming pairs until one comes back fused.
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
DiagnosticStatus = pytest.importorskip('diagnostic_msgs.msg').DiagnosticStatus
LaunchDescription = pytest.importorskip('launch').LaunchDescription
IncludeLaunchDescription = pytest.importorskip('launch.actions').IncludeLaunchDescription
PythonLaunchDescriptionSource = pytest.importorskip(
    'launch.launch_description_sources').PythonLaunchDescriptionSource
Transition = pytest.importorskip('lifecycle_msgs.msg').Transition
pytest.importorskip('sensor_msgs.msg')
Detection2DArray = pytest.importorskip('vision_msgs.msg').Detection2DArray

# launch_test FILE adds no pytest paths: the probe is found beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ros_probe import (  # noqa: E402
    camera_info_msg, diagnostic_values, FX, HEIGHT, Probe, stamp_s, WIDTH)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'launch', 'fusion.launch.py')
NAMESPACE = '/launch_test'
NODE = NAMESPACE + '/fusion_node'
DIAG_NAME = NODE.lstrip('/')
THERMAL = '/launch_test_cams/flir/image_raw'
RGB = '/launch_test_cams/color/image_raw'
CAMERA_INFO = '/launch_test_cams/color/camera_info'
FUSED = NAMESPACE + '/fused/image'
OUTPUTS = {FUSED: Image, NAMESPACE + '/fused/camera_info': CameraInfo,
           NAMESPACE + '/semantic/labels': Image, NAMESPACE + '/semantic/targets': Image}
OVERLAY = NAMESPACE + '/semantic/overlay'
DETECTIONS = NAMESPACE + '/semantic/detections'


@pytest.mark.launch_test
def generate_test_description():
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'namespace': NAMESPACE, 'device': 'cpu', 'thermal_topic': THERMAL,
                          'rgb_topic': RGB, 'camera_info_topic': CAMERA_INFO}.items())
    return LaunchDescription([fusion, launch_testing.actions.ReadyToTest()])


class TestFusionNode(unittest.TestCase):
    """One probe node for all tests; they run in name order (test_1_... first)."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe('fusion_launch_probe')
        for topic, msg_type in OUTPUTS.items():
            cls.probe.listen(topic, msg_type)
        cls.probe.listen(DETECTIONS, Detection2DArray)

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()
        rclpy.shutdown()

    def books_balance(self, status) -> bool:
        values = diagnostic_values(status)
        for source in ('thermal', 'rgb'):
            parts = [int(values[f'{source} {what}'])
                     for what in ('published', 'dropped', 'rejected', 'pending')]
            if int(values[f'{source} received']) != sum(parts):
                return False
        return True

    def test_1_launch_file_brings_the_node_to_active(self):
        self.assertEqual(self.probe.wait_active(NODE, FUSED), 'active')

    def test_2_best_effort_and_reliable_cameras_are_fused_with_their_stamps(self):
        probe = self.probe
        info_pub = probe.node.create_publisher(CameraInfo, CAMERA_INFO, 10)
        self.assertTrue(probe.wait_subscribed(NODE, info_pub, CAMERA_INFO))
        calibrated = NAMESPACE + '/fused/camera_info'

        def send_info(_):  # the node subscribes camera info best effort, like the cameras
            info_pub.publish(camera_info_msg(99.0, 'rgb_optical'))

        def info_applied():  # a fused pair came out with the camera's intrinsics
            return any(abs(m.k[0] - FX) < 1e-9 for m in probe.heard[calibrated])
        for base, reliability in ((100.0, 'best_effort'), (200.0, 'reliable')):
            pubs = probe.cameras(THERMAL, RGB, reliability, node=NODE, fused_topic=FUSED,
                                 first_stamp=base, also=send_info, until=info_applied)
            stamps = [base + i / 10 for i in range(10)]
            fused = probe.send_pairs_lockstep(pubs, stamps, FUSED)
            # best effort may lose a frame on a loaded machine, reliable must not
            self.assertGreaterEqual(len(fused), 9 if reliability == 'best_effort' else 10,
                                    f'{reliability}: fused {fused} of {stamps}')
            for pub in pubs:
                probe.node.destroy_publisher(pub)
        probe.node.destroy_publisher(info_pub)
        # every output of a pair carries the RGB stamp and frame id, in the RGB image's size
        probe.spin_for(1.0)
        fused_stamps = set(probe.fused_stamps(FUSED))
        for topic in OUTPUTS:
            self.assertTrue(probe.heard[topic], f'nothing on {topic}')
            for msg in probe.heard[topic]:
                self.assertIn(round(stamp_s(msg.header.stamp), 6), fused_stamps, topic)
                self.assertEqual(msg.header.frame_id, 'rgb_optical', topic)
                self.assertEqual((msg.width, msg.height), (WIDTH, HEIGHT), topic)
        fused = probe.heard[FUSED][-1]
        self.assertEqual(fused.encoding, 'bgr8')
        self.assertEqual(len(fused.data), WIDTH * HEIGHT * 3)
        self.assertEqual(probe.heard[NAMESPACE + '/semantic/labels'][-1].encoding, 'mono16')
        self.assertEqual(probe.heard[NAMESPACE + '/semantic/targets'][-1].encoding, 'mono8')
        info = probe.heard[NAMESPACE + '/fused/camera_info'][-1]
        self.assertAlmostEqual(info.k[0], FX)  # the camera's intrinsics, output size = input
        self.assertEqual(probe.heard[OVERLAY], [])  # nobody subscribed: never published

    def test_3_overlay_only_while_subscribed(self):
        probe = self.probe
        status = probe.wait_diagnostics(DIAG_NAME, 'processing')
        self.assertIsNotNone(status)
        self.assertEqual(diagnostic_values(status)['overlay published'], '0')
        probe.listen(OVERLAY, Image)
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=300.0)
        # the node sees the new subscriber once discovery is through: send until one comes back
        sent = 300.0

        def one_more():
            nonlocal sent
            sent += 0.1
            probe.send_pair(pubs, sent)
            probe.spin_for(0.3)
        self.assertTrue(probe.spin_until(lambda: probe.heard[OVERLAY], 60.0, step=one_more),
                        'no overlay while subscribed')
        overlay = probe.heard[OVERLAY][-1]
        self.assertEqual((overlay.encoding, overlay.header.frame_id), ('bgr8', 'rgb_optical'))
        probe.stop_listening(OVERLAY)
        self.assertTrue(probe.spin_until(lambda: probe.node.count_subscribers(OVERLAY) == 0,
                                         10.0))

        def overlays_published():  # from a status sent after what came back so far
            status = probe.wait_diagnostics(DIAG_NAME, 'processing')
            self.assertIsNotNone(status, 'no /diagnostics')
            return int(diagnostic_values(status)['overlay published'])
        # the node stops rendering the overlay once discovery tells it the subscriber is gone:
        # send pairs until one is fused without adding to its count, then count from there
        published, sent, settled = overlays_published(), 350.0, False
        for _ in range(30):
            fused = probe.send_pairs_lockstep(pubs, [sent], FUSED)
            sent += 0.1
            now = overlays_published()
            settled, published = bool(fused) and now == published, now
            if settled:
                break
        self.assertTrue(settled, 'the node kept publishing the overlay without a subscriber')
        fused = probe.send_pairs_lockstep(pubs, [400.0 + i / 10 for i in range(5)], FUSED)
        self.assertEqual(len(fused), 5)
        after = probe.wait_diagnostics(DIAG_NAME, 'processing')  # taken after the 5 pairs
        self.assertEqual(int(diagnostic_values(after)['overlay published']), published)
        for pub in pubs:
            probe.node.destroy_publisher(pub)

    def test_4_diagnostics_name_the_remapped_inputs_and_balance_their_books(self):
        probe = self.probe
        status = probe.wait_diagnostics(DIAG_NAME, 'inputs', self.books_balance)
        self.assertIsNotNone(status, 'received != published + dropped + rejected + pending')
        values = diagnostic_values(status)
        self.assertEqual(values['thermal topic'], THERMAL)
        self.assertEqual(values['rgb topic'], RGB)
        self.assertEqual(values['camera_info topic'], CAMERA_INFO)
        self.assertGreaterEqual(int(values['rgb published']), 19)
        processing = diagnostic_values(probe.diagnostics(DIAG_NAME, 'processing'))
        self.assertEqual((processing['state'], processing['device']), ('active', 'cpu'))

    def test_5_parameters_accepted_or_refused_with_the_reason(self):
        probe = self.probe
        result = probe.set_parameter(NODE, 'sync.slop', 0.03)
        self.assertTrue(result.successful, result.reason)
        self.assertAlmostEqual(probe.get_parameter(NODE, 'sync.slop'), 0.03)
        # applied, not only stored: the synchroniser reports the new slop
        status = probe.wait_diagnostics(
            DIAG_NAME, 'synchronisation', lambda s: diagnostic_values(s)['slop (s)'] == '0.03')
        self.assertIsNotNone(status, 'sync.slop accepted but not applied')
        for name, value, why in (('sync.slop', 20.0, ''),          # rclpy: out of range
                                 ('device', 'cuda', ''),           # rclpy: read-only
                                 ('sync.queue_size', 0, ''),       # rclpy: out of range
                                 ('output.encoding', 'rgb16', 'output.encoding')):  # ours
            result = probe.set_parameter(NODE, name, value)
            self.assertFalse(result.successful, f'{name}={value!r} was accepted')
            self.assertTrue(result.reason, f'{name}={value!r} refused without a reason')
            self.assertIn(why, result.reason)
        self.assertAlmostEqual(probe.get_parameter(NODE, 'sync.slop'), 0.03)
        self.assertEqual(probe.get_parameter(NODE, 'device'), 'cpu')
        # the detector-facing background.* option changes at run time, within its range
        result = probe.set_parameter(NODE, 'background.detail_gain', 0.0)
        self.assertTrue(result.successful, result.reason)
        self.assertFalse(probe.set_parameter(NODE, 'background.detail_gain', 1.5).successful)
        self.assertAlmostEqual(probe.get_parameter(NODE, 'background.detail_gain'), 0.0)
        result = probe.set_parameter(NODE, 'background.detail_gain', 1.0)
        self.assertTrue(result.successful, result.reason)

    def test_6_outputs_stop_on_deactivate_and_resume_on_activate(self):
        probe = self.probe
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=500.0)
        self.assertTrue(probe.change_state(NODE, Transition.TRANSITION_DEACTIVATE))
        self.assertEqual(probe.lifecycle_state(NODE), 'inactive')
        heard = {topic: len(probe.heard[topic]) for topic in OUTPUTS}
        for i in range(5):
            probe.send_pair(pubs, 500.0 + i / 10)
            probe.spin_for(0.2)
        probe.spin_for(2.0)
        self.assertEqual({topic: len(probe.heard[topic]) for topic in OUTPUTS}, heard)
        status = probe.wait_diagnostics(DIAG_NAME, 'processing')
        self.assertEqual(status.level, DiagnosticStatus.ERROR)  # 'inactive: not processing'
        self.assertTrue(probe.change_state(NODE, Transition.TRANSITION_ACTIVATE))
        self.assertEqual(probe.lifecycle_state(NODE), 'active')
        for pub in pubs:
            probe.node.destroy_publisher(pub)
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=600.0)
        fused = probe.send_pairs_lockstep(pubs, [600.0 + i / 10 for i in range(5)], FUSED)
        self.assertEqual(len(fused), 5)

    def test_7_graph_shows_namespaced_outputs_and_remapped_inputs(self):
        node = self.probe.node
        publishers = {name for name, _ in node.get_publisher_names_and_types_by_node(
            'fusion_node', NAMESPACE)}
        subscriptions = {name for name, _ in node.get_subscriber_names_and_types_by_node(
            'fusion_node', NAMESPACE)}
        self.assertLessEqual(set(OUTPUTS) | {OVERLAY, DETECTIONS, '/diagnostics'}, publishers)
        self.assertLessEqual({THERMAL, RGB, CAMERA_INFO}, subscriptions)
        # the standard per-topic QoS override parameters exist (QoSOverridingOptions)
        self.assertEqual(self.probe.get_parameter(
            NODE, f'qos_overrides.{THERMAL}.subscription.reliability'), 'best_effort')
        self.assertEqual(self.probe.get_parameter(
            NODE, f'qos_overrides.{FUSED}.publisher.reliability'), 'reliable')

    def test_8_detections_carry_the_pair_stamp_and_keep_their_ids(self):
        probe = self.probe
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=700.0)
        stamps = [round(700.0 + i / 10, 6) for i in range(5)]
        fused = probe.send_pairs_lockstep(pubs, stamps, FUSED)
        self.assertEqual(fused, stamps)

        def heard():
            return {round(stamp_s(m.header.stamp), 6): m for m in probe.heard[DETECTIONS]}
        self.assertTrue(probe.spin_until(lambda: set(stamps) <= set(heard()), 20.0),
                        f'no detections for some of {stamps}')
        ids = []
        for seconds in stamps:
            msg = heard()[seconds]  # one Detection2DArray per fused pair, with its stamp
            self.assertEqual(msg.header.frame_id, 'rgb_optical')
            self.assertTrue(msg.detections, f'no warm target in the pair at {seconds}')
            for detection in msg.detections:
                self.assertEqual(round(stamp_s(detection.header.stamp), 6), seconds)
                box = detection.bbox
                self.assertTrue(0 < box.size_x <= WIDTH and 0 < box.size_y <= HEIGHT)
                self.assertTrue(0 <= box.center.position.x <= WIDTH)
                self.assertTrue(0 <= box.center.position.y <= HEIGHT)
                self.assertEqual(detection.results[0].hypothesis.class_id, 'warm_target')
                self.assertTrue(0.0 < detection.results[0].hypothesis.score <= 1.0)
            ids.append(sorted(d.id for d in msg.detections))
        # the same scene five times: the same targets, under the same ids, every frame
        self.assertEqual(ids, [ids[0]] * len(stamps))
        self.assertEqual(len(set(ids[0])), len(ids[0]))
        for pub in pubs:
            probe.node.destroy_publisher(pub)

    def test_9_warm_tint_colours_warm_parts_and_turns_off_at_run_time(self):
        probe = self.probe
        self.assertAlmostEqual(probe.get_parameter(NODE, 'colour.warm_tint'), 80.0)
        refused = probe.set_parameter(NODE, 'colour.warm_tint', 200.0)  # range 0 .. 127
        self.assertFalse(refused.successful, 'colour.warm_tint 200 was accepted')
        pubs = probe.cameras(THERMAL, RGB, 'reliable', node=NODE, fused_topic=FUSED,
                             first_stamp=800.0)

        def fused_at(seconds):
            msg = [m for m in probe.heard[FUSED] if round(stamp_s(m.header.stamp), 6) == seconds]
            self.assertTrue(msg, f'no fused image at {seconds}')
            return np.frombuffer(bytes(msg[-1].data), np.uint8).reshape(HEIGHT, WIDTH, 3)

        self.assertEqual(probe.send_pairs_lockstep(pubs, [800.0], FUSED), [800.0])
        tinted = fused_at(800.0).astype(np.float64)
        result = probe.set_parameter(NODE, 'colour.warm_tint', 0.0)
        self.assertTrue(result.successful, result.reason)
        # the pipeline is rebuilt before the next pair
        self.assertEqual(probe.send_pairs_lockstep(pubs, [801.0], FUSED), [801.0])
        plain = fused_at(801.0).astype(np.float64)
        red = tinted[..., 2] - plain[..., 2]
        self.assertGreater(red.max(), 30.0, 'no part of the image turned red')
        self.assertGreater((red > 10).mean(), 0.001)
        # only the colour changed: the brightness (BGR -> gray) is the same within rounding

        def gray(bgr):
            return 0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]
        self.assertLess(np.abs(gray(tinted) - gray(plain)).max(), 2.0)
        self.assertTrue(probe.set_parameter(NODE, 'colour.warm_tint', 80.0).successful)
        for pub in pubs:
            probe.node.destroy_publisher(pub)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code_is_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
