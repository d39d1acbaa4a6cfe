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
The launch tests' side of the wire: a plain rclpy node that plays the cameras and a user.

It publishes thermal + RGB pairs (and camera info) with a chosen QoS, listens to the fusion
node's outputs, calls its lifecycle and parameter services and reads its /diagnostics, with
nothing but rclpy and the standard message packages (imported only by the launch tests, which
skip where ROS 2 is absent). When to start counting what comes back: ros_sync (same folder).

Importable without pytest: the launch tests put this folder on sys.path themselves, as
``launch_test FILE`` does not (test/test_colcon_setup.py checks it).
"""

import array
from collections import defaultdict
import sys
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros_sync import handshake, priming_stamps, split_node_name, subscription_ready, wait_until
from sensor_msgs.msg import CameraInfo, Image

from sgdfuse_ros.eval.synthetic_pairs import make_pair

WIDTH, HEIGHT = 160, 128
FX = 200.0


def qos(reliability: str, depth: int = 5) -> QoSProfile:
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort' else \
        ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


def stamp_msg(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def image_msg(pixels: np.ndarray, seconds: float, frame_id: str, encoding: str) -> Image:
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    msg.header.stamp = stamp_msg(seconds)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == 'big')
    msg.step = int(pixels.strides[0])
    msg.data = array.array('B', pixels.tobytes())
    return msg


def camera_info_msg(seconds: float, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = stamp_msg(seconds)
    msg.header.frame_id = frame_id
    msg.width, msg.height = WIDTH, HEIGHT
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [FX, 0.0, WIDTH / 2, 0.0, FX, HEIGHT / 2, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [FX, 0.0, WIDTH / 2, 0.0, 0.0, FX, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def diagnostic_values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


class Probe:
    """One rclpy node (call ``rclpy.init()`` first); everything it hears is kept per topic."""

    def __init__(self, name: str):
        self.node = rclpy.create_node(name)
        self.heard = defaultdict(list)
        self._subscriptions = {}
        ir, vis, _ = make_pair(3, (WIDTH, HEIGHT))
        self.thermal = (7000 + 60 * ir.astype(np.uint16)).astype(np.uint16)
        self.visible = vis
        self.listen('/diagnostics', DiagnosticArray, qos('reliable', 50))

    def close(self) -> None:
        self.node.destroy_node()

    # --- topics ---------------------------------------------------------------------------------
    def listen(self, topic: str, msg_type, profile=None) -> None:
        def keep(msg, topic=topic):
            self.heard[topic].append(msg)
        self._subscriptions[topic] = self.node.create_subscription(
            msg_type, topic, keep, profile or qos('reliable', 50))

    def stop_listening(self, topic: str) -> None:
        self.node.destroy_subscription(self._subscriptions.pop(topic))

    def wait_subscribed(self, node: str, publisher, topic: str, timeout: float = 60.0) -> bool:
        """Wait until ``node`` subscribes ``topic`` in the graph and ``publisher`` is matched."""
        name, namespace = split_node_name(node)
        return wait_until(
            lambda: subscription_ready(self.node, publisher, topic, name, namespace), timeout,
            lambda: rclpy.spin_once(self.node, timeout_sec=0.02))

    def cameras(self, thermal_topic: str, rgb_topic: str, reliability: str, *, node: str,
                fused_topic: str, first_stamp: float, also=None, until=None):
        """
        Return publishers of the two cameras with this reliability, once the node hears them.

        The node ``node`` must subscribe both topics in the graph and the publishers count it
        matched; then priming pairs stamped before ``first_stamp`` are sent until one comes
        back fused on ``fused_topic`` (ros_sync.handshake), and also ``until()`` holds when
        given. ``also(i)`` is called with each priming pair (e.g. to resend camera info).
        Pairs stamped ``first_stamp`` on are then fused (best effort: unless the machine drops
        them), and only those are counted by the tests.
        """
        profile = qos(reliability)
        pubs = (self.node.create_publisher(Image, thermal_topic, profile),
                self.node.create_publisher(Image, rgb_topic, profile))
        for pub, topic in zip(pubs, (thermal_topic, rgb_topic)):
            assert self.wait_subscribed(node, pub, topic), \
                f'{node} does not subscribe {topic} (or the probe never matched it)'
        stamps = priming_stamps(first_stamp)
        primed = {round(s, 6) for s in stamps}

        def send(i):
            assert i < len(stamps), 'out of priming stamps'
            if also is not None:
                also(i)
            self.send_pair(pubs, stamps[i])

        def delivered():
            return (bool(primed.intersection(self.fused_stamps(fused_topic))) and
                    (until is None or until()))
        sends = handshake(send, delivered, lambda: rclpy.spin_once(self.node, timeout_sec=0.02))
        assert sends is not None, \
            f'{reliability} cameras: no priming pair came back on {fused_topic} in 60 s'
        return pubs

    def send_pair(self, pubs, seconds: float) -> None:
        """Publish one pair: RGB stamped ``seconds``, thermal 2 ms later (within sync.slop)."""
        thermal_pub, rgb_pub = pubs
        thermal_pub.publish(image_msg(self.thermal, seconds + 0.002, 'thermal_optical', 'mono16'))
        rgb_pub.publish(image_msg(self.visible, seconds, 'rgb_optical', 'bgr8'))

    def fused_stamps(self, topic: str) -> list:
        return [round(stamp_s(m.header.stamp), 6) for m in self.heard[topic]]

    def send_pairs_lockstep(self, pubs, stamps, fused_topic: str, timeout: float = 20.0) -> list:
        """Send each pair once its predecessor came back fused; return the stamps fused."""
        fused = []
        for seconds in stamps:
            self.send_pair(pubs, seconds)
            if self.spin_until(lambda s=seconds: round(s, 6) in self.fused_stamps(fused_topic),
                               timeout):
                fused.append(round(seconds, 6))
        return fused

    # --- spinning -------------------------------------------------------------------------------
    def spin_until(self, condition, timeout: float, step=None) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            rclpy.spin_once(self.node, timeout_sec=0.02)
            if step is not None:
                step()
        return True

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
            future = client.call_async(request)
            assert self.spin_until(future.done, timeout), f'{name} did not answer'
            return future.result()
        finally:
            self.node.destroy_client(client)

    # --- the fusion node's services -------------------------------------------------------------
    def lifecycle_state(self, node: str) -> str:
        return self.call(GetState, f'{node}/get_state', GetState.Request()).current_state.label

    def wait_active(self, node: str, output_topic: str, timeout: float = 120.0) -> str:
        """
        Wait until ``node`` has created ``output_topic`` and reached ``active``; its last state.

        The node configures and activates itself before it spins (``autostart``): its outputs
        appear first, then its lifecycle services answer.
        """
        assert self.spin_until(lambda: self.node.count_publishers(output_topic) > 0, timeout), \
            f'{node} never created {output_topic}'
        state = None
        for _ in range(600):
            state = self.lifecycle_state(node)
            if state == 'active':
                break
            self.spin_for(0.2)
        return state

    def change_state(self, node: str, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition = Transition(id=transition_id)
        return self.call(ChangeState, f'{node}/change_state', request).success

    def set_parameter(self, node: str, name: str, value):
        """Return rcl_interfaces/SetParametersResult (successful, reason)."""
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()]
        return self.call(SetParameters, f'{node}/set_parameters', request).results[0]

    def get_parameter(self, node: str, name: str):
        request = GetParameters.Request()
        request.names = [name]
        (value,) = self.call(GetParameters, f'{node}/get_parameters', request).values
        return {ParameterType.PARAMETER_BOOL: value.bool_value,
                ParameterType.PARAMETER_INTEGER: value.integer_value,
                ParameterType.PARAMETER_DOUBLE: value.double_value,
                ParameterType.PARAMETER_STRING: value.string_value}.get(value.type)

    # --- /diagnostics ---------------------------------------------------------------------------
    def diagnostics(self, node_name: str, task: str, after: int = 0):
        """Return the newest status ``<node_name>: <task>`` in the arrays heard since ``after``."""
        for array_msg in reversed(self.heard['/diagnostics'][after:]):
            for status in array_msg.status:
                if status.name == f'{node_name}: {task}':
                    return status
        return None

    def wait_diagnostics(self, node_name: str, task: str, condition=lambda status: True,
                         timeout: float = 15.0, step=None):
        """Wait for a fresh status of ``task`` that meets ``condition``; return it (or None)."""
        start = len(self.heard['/diagnostics'])
        found = []

        def fresh():
            status = self.diagnostics(node_name, task, after=start)
            if status is not None and condition(status):
                found.append(status)
            return bool(found)
        self.spin_until(fresh, timeout, step=step)
        return found[0] if found else None
