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
The rclpy lifecycle node (skipped where ROS 2 is not installed).

Run in a sourced ROS 2 workspace: ``colcon test --packages-select sgdfuse_ros`` or
``python -m pytest test/ros/test_ros_node.py``.
"""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('sensor_msgs.msg')
pytest.importorskip('rclpy.lifecycle')

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from sgdfuse_ros import messages  # noqa: E402
from sgdfuse_ros.eval.synthetic_pairs import make_pair  # noqa: E402
from sgdfuse_ros.parameters import ALL_PARAMS, SPECS  # noqa: E402
from sgdfuse_ros.ros.fusion_node import FusionNode  # noqa: E402


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def spin_until(executor, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_parameters_are_declared_with_descriptors(ros):
    node = FusionNode('fusion_node_params')
    try:
        for spec in ALL_PARAMS:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.description == spec.description
            assert descriptor.read_only == spec.read_only
            if spec.min is not None and spec.kind is float:
                assert descriptor.floating_point_range[0].to_value == spec.max
            if spec.min is not None and spec.kind is int:
                assert descriptor.integer_range[0].from_value == spec.min
    finally:
        node.destroy_node()


def test_runtime_changes_are_validated_and_read_only_refused(ros):
    node = FusionNode('fusion_node_set')
    default_slop = SPECS['sync.slop'].default
    try:
        assert node.autostart()
        (result,) = node.set_parameters([Parameter('sync.slop', value=11.0)])
        assert not result.successful and result.reason  # refused, with the reason
        assert node.core.sync.slop == default_slop
        (result,) = node.set_parameters([Parameter('output.encoding', value='rgb16')])
        assert not result.successful and 'output.encoding' in result.reason  # our check
        assert node.core.config['output.encoding'] == 'bgr8'
        (result,) = node.set_parameters([Parameter('prior.source', value='none')])
        assert not result.successful
        (result,) = node.set_parameters([Parameter('sync.slop', value=0.03)])
        # checked in the on-set callback, applied in the post-set one (or at once on Humble)
        assert result.successful and node.core.sync.slop == 0.03
        assert node.get_parameter('sync.slop').value == 0.03
    finally:
        node._release()
        node.destroy_node()


def test_outputs_are_lifecycle_publishers_and_diagnostics_is_not(ros):
    from rclpy.lifecycle import LifecyclePublisher

    node = FusionNode('fusion_node_pubs')
    try:
        assert node.autostart()
        outputs = {topic: pub._publisher for topic, pub in node.core._publishers.items()}
        assert outputs and all(isinstance(p, LifecyclePublisher) and p.is_activated
                               for p in outputs.values())
        assert not isinstance(node.core._diagnostics.publisher._publisher, LifecyclePublisher)
        node.trigger_deactivate()
        assert not any(p.is_activated for p in outputs.values())  # silent while inactive
        node.trigger_activate()
        assert all(p.is_activated for p in outputs.values())
    finally:
        node._release()
        node.destroy_node()


def test_standard_qos_overrides_reach_the_subscriptions(ros):
    from rclpy.qos import ReliabilityPolicy

    override = 'qos_overrides./thermal/image_raw.subscription.reliability'
    node = FusionNode('fusion_node_qos',
                      parameter_overrides=[Parameter(override, value='reliable')])
    try:
        assert node.autostart()
        profiles = {sub._subscription.topic_name: sub._subscription.qos_profile
                    for sub in node.core._subscriptions}
        assert profiles['/thermal/image_raw'].reliability == ReliabilityPolicy.RELIABLE
        # the other camera keeps the qos.reliability default (best effort)
        assert profiles['/rgb/image_raw'].reliability == ReliabilityPolicy.BEST_EFFORT
        assert node.get_parameter(override).value == 'reliable'
        assert node.has_parameter('qos_overrides./fused/image.publisher.reliability')
    finally:
        node._release()
        node.destroy_node()


def test_autostarted_node_fuses_a_pair_and_frees_models_on_deactivate(ros):
    node = FusionNode('fusion_node_live', namespace='/sgdfuse_test')
    helper = rclpy.create_node('sgdfuse_test_camera', namespace='/sgdfuse_test')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(helper)
    try:
        assert node.autostart() and node.core.state == 'active'
        received = []
        helper.create_subscription(Image, 'fused/image', received.append, 10)
        thermal_pub = helper.create_publisher(Image, 'thermal/image_raw', qos_profile_sensor_data)
        rgb_pub = helper.create_publisher(Image, 'rgb/image_raw', qos_profile_sensor_data)
        ir, vis, _ = make_pair(2, (160, 120))
        assert spin_until(executor, lambda: thermal_pub.get_subscription_count() > 0)

        def send(stamp):
            thermal = messages.image_msg(ir, messages.make_header(stamp + 0.002, 'thermal'))
            rgb = messages.image_msg(vis, messages.make_header(stamp, 'rgb'))
            thermal_pub.publish(messages.serialize(thermal))
            rgb_pub.publish(messages.serialize(rgb))

        for i in range(20):
            send(100.0 + i / 30)
            if spin_until(executor, lambda: received, timeout=0.1):
                break
        assert received, 'no fused image'
        msg = received[0]
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        assert (msg.width, msg.height, msg.encoding) == (160, 120, 'bgr8')
        assert min(abs(stamp - (100.0 + i / 30)) for i in range(20)) < 1e-6
        assert msg.header.frame_id == 'rgb'
        assert np.asarray(msg.data).size == 160 * 120 * 3
        node.trigger_deactivate()
        assert node.core.state == 'inactive' and node.core.pipeline is None
        count = len(received)
        send(200.0)  # nobody subscribes any more, and the outputs are disabled
        spin_until(executor, lambda: len(received) > count, timeout=1.0)
        assert len(received) == count
    finally:
        node._release()
        executor.shutdown()
        helper.destroy_node()
        node.destroy_node()
