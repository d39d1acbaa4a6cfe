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
Launch test: the node on simulated time, with a QoS override, stopped by Ctrl-C.

The node (``fusion_node`` as ``ros2 bag play --clock`` users run it: ``use_sim_time: true``)
gets a parameter file holding only a standard QoS override
(``qos_overrides./thermal/image_raw.subscription.reliability: reliable``). The tests check
that the override reaches the subscription while the other camera keeps the ``qos.*`` default,
that /diagnostics follows a /clock published here, and that SIGINT ends the process within a
few seconds with exit status 0.

Run by ``colcon test`` or alone with ``launch_test test/ros/test_fusion_sim_time_launch.py``;
skipped where ROS 2 / launch_testing are not installed.
"""

import os
import signal
import sys
import tempfile
import time
import unittest

import pytest

launch_testing = pytest.importorskip('launch_testing')
pytest.importorskip('launch_testing.actions')
pytest.importorskip('launch_testing.asserts')
launch_ros_actions = pytest.importorskip('launch_ros.actions')
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('rosgraph_msgs.msg')
pytest.importorskip('sensor_msgs.msg')
LaunchDescription = pytest.importorskip('launch').LaunchDescription
ExecuteProcess = pytest.importorskip('launch.actions').ExecuteProcess

# launch_test FILE adds no pytest paths: the probe is found beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from ros_probe import Probe, stamp_msg, stamp_s  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

NODE_NAME = 'fusion_sim'
SIM_START = 5000.0
PARAMS = """\
/**:
  ros__parameters:
    qos_overrides:
      /thermal/image_raw:
        subscription:
          reliability: reliable
"""
# keeps the launch alive once the node under test has been stopped by the SIGINT test
KEEP_ALIVE = 'import time\ntry:\n    time.sleep(3600)\nexcept KeyboardInterrupt:\n    pass\n'


@pytest.mark.launch_test
def generate_test_description():
    params = tempfile.NamedTemporaryFile('w', suffix='.yaml', prefix='sgdfuse_qos_',
                                         delete=False)
    with params:
        params.write(PARAMS)
    fusion = launch_ros_actions.LifecycleNode(
        package='sgdfuse_ros', executable='fusion_node', name=NODE_NAME, namespace='',
        output='screen',
        parameters=[params.name, {'use_sim_time': True, 'device': 'cpu'}])
    keep_alive = ExecuteProcess(cmd=[sys.executable, '-c', KEEP_ALIVE], name='keep_alive')
    return (LaunchDescription([fusion, keep_alive, launch_testing.actions.ReadyToTest()]),
            {'fusion': fusion, 'params_file': params.name})


class TestSimTimeQosAndSigint(unittest.TestCase):
    """Run in name order: the SIGINT test is last."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe('fusion_sim_probe')
        cls.probe.listen('/fused/image', Image)
        cls.clock_pub = cls.probe.node.create_publisher(Clock, '/clock', 10)
        cls.sim_now = SIM_START

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()
        rclpy.shutdown()

    def tick(self):
        """Advance the simulated clock by 50 ms."""
        type(self).sim_now += 0.05
        self.clock_pub.publish(Clock(clock=stamp_msg(self.sim_now)))

    def test_1_qos_override_reaches_the_subscription(self):
        node = self.probe.node
        self.assertTrue(self.probe.spin_until(
            lambda: node.get_subscriptions_info_by_topic('/rgb/image_raw'), 120.0),
            'the node never subscribed its cameras')
        (thermal,) = [i for i in node.get_subscriptions_info_by_topic('/thermal/image_raw')
                      if i.node_name == NODE_NAME]
        (rgb,) = [i for i in node.get_subscriptions_info_by_topic('/rgb/image_raw')
                  if i.node_name == NODE_NAME]
        self.assertEqual(thermal.qos_profile.reliability, ReliabilityPolicy.RELIABLE)
        self.assertEqual(rgb.qos_profile.reliability, ReliabilityPolicy.BEST_EFFORT)
        self.assertEqual(self.probe.get_parameter(
            '/' + NODE_NAME, 'qos_overrides./thermal/image_raw.subscription.reliability'),
            'reliable')

    def test_2_diagnostics_follow_the_published_clock(self):
        # rclpy timers run on the node's clock: with use_sim_time they fire as /clock advances
        status = self.probe.wait_diagnostics(NODE_NAME, 'processing', timeout=30.0,
                                             step=self.tick)
        self.assertIsNotNone(status, 'no /diagnostics while /clock advances')
        stamp = stamp_s(self.probe.heard['/diagnostics'][-1].header.stamp)
        self.assertGreaterEqual(stamp, SIM_START)
        self.assertLessEqual(stamp, self.sim_now + 0.001)
        # and a pair stamped in simulated time comes back with its stamps
        first = self.sim_now + 0.01
        pubs = self.probe.cameras('/thermal/image_raw', '/rgb/image_raw', 'reliable',
                                  node='/' + NODE_NAME, fused_topic='/fused/image',
                                  first_stamp=first)
        fused = self.probe.send_pairs_lockstep(pubs, [first], '/fused/image')
        self.assertEqual(fused, [round(first, 6)])

    def test_3_sigint_stops_the_node_within_seconds(self, proc_info, fusion):
        pid = fusion.process_details['pid']
        start = time.monotonic()
        os.kill(pid, signal.SIGINT)
        proc_info.assertWaitForShutdown(process=fusion, timeout=10)
        self.assertLess(time.monotonic() - start, 5.0, 'Ctrl-C took more than 5 s')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code_is_zero_after_sigint(self, proc_info, fusion, params_file):
        os.unlink(params_file)
        launch_testing.asserts.assertExitCodes(proc_info, process=fusion)
        launch_testing.asserts.assertExitCodes(proc_info)  # the keep-alive process too
