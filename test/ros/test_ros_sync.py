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
The launch tests' waiting logic (ros_sync), against a fake graph and a fake clock: no ROS needed.

The fake network reproduces the race seen with Cyclone DDS: the probe's publisher reports a
matched subscription before the node's reader has matched it back, and whatever is sent before
that is lost.
"""

from types import SimpleNamespace

import pytest
from ros_sync import (handshake, node_subscribes, priming_stamps, split_node_name,
                      subscription_ready, wait_until)


class FakeClock:

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeNetwork:
    """
    A publisher and the node under test, with discovery that completes step by step.

    Time advances only by spinning (0.02 s per spin). At ``graph_at`` the node's subscription
    appears in the graph, at ``pub_match_at`` the publisher counts it, and only at
    ``reader_match_at`` does the node's reader accept data: earlier sends are lost. A pair the
    node receives comes back fused ``latency`` seconds later.
    """

    def __init__(self, graph_at=1.0, pub_match_at=1.5, reader_match_at=3.0, latency=0.5,
                 node=('fusion_node', '/ns')):
        self.clock = FakeClock()
        self.graph_at, self.pub_match_at = graph_at, pub_match_at
        self.reader_match_at, self.latency = reader_match_at, latency
        self.node = node
        self.sent, self.lost, self.fused = [], [], []
        self._due = []

    # the rclpy surface the helpers use
    def get_subscriptions_info_by_topic(self, topic):
        infos = [SimpleNamespace(node_name='rviz', node_namespace='/')]  # another subscriber
        if self.clock.now >= self.graph_at:
            infos.append(SimpleNamespace(node_name=self.node[0], node_namespace=self.node[1]))
        return infos

    def get_subscription_count(self):
        return 2 if self.clock.now >= self.pub_match_at else 0

    def spin_once(self):
        self.clock.now = round(self.clock.now + 0.02, 6)
        self.fused += [stamp for due, stamp in self._due if due <= self.clock.now]
        self._due = [(due, stamp) for due, stamp in self._due if due > self.clock.now]

    def send(self, stamp):
        self.sent.append(stamp)
        if self.clock.now < self.reader_match_at:
            self.lost.append(stamp)
        else:
            self._due.append((self.clock.now + self.latency, stamp))


def test_node_names_split_into_name_and_namespace():
    assert split_node_name('/launch_test/fusion_node') == ('fusion_node', '/launch_test')
    assert split_node_name('/a/b/node') == ('node', '/a/b')
    assert split_node_name('/fusion_sim') == ('fusion_sim', '/')
    assert split_node_name('fusion_sim') == ('fusion_sim', '/')
    with pytest.raises(ValueError):
        split_node_name('/ns/')


def test_the_nodes_subscription_is_looked_for_by_name_and_namespace():
    net = FakeNetwork(graph_at=0.0, node=('fusion_node', '/ns'))
    assert node_subscribes(net, '/cam', 'fusion_node', '/ns')
    assert not node_subscribes(net, '/cam', 'fusion_node', '/other')  # same name elsewhere
    assert not node_subscribes(net, '/cam', 'rviz2', '/ns')


def test_ready_needs_the_graph_entry_and_the_publishers_match():
    net = FakeNetwork(graph_at=1.0, pub_match_at=0.5)
    assert wait_until(lambda: subscription_ready(net, net, '/cam', 'fusion_node', '/ns'), 10.0,
                      net.spin_once, net.clock)
    assert net.clock.now == pytest.approx(1.0)  # the later of the two, not the publisher's 0.5
    net = FakeNetwork(graph_at=0.2, pub_match_at=2.0)
    assert wait_until(lambda: subscription_ready(net, net, '/cam', 'fusion_node', '/ns'), 10.0,
                      net.spin_once, net.clock)
    assert net.clock.now == pytest.approx(2.0)


def test_wait_until_gives_up_after_the_timeout():
    net = FakeNetwork(graph_at=100.0)
    assert not wait_until(lambda: node_subscribes(net, '/cam', 'fusion_node', '/ns'), 5.0,
                          net.spin_once, net.clock)
    assert 5.0 <= net.clock.now <= 5.1


def test_handshake_resends_until_a_pair_comes_back_then_counted_pairs_all_arrive():
    # the race of the flaky test: the publisher is matched at 1.5 s, the node's reader at 3 s
    net = FakeNetwork(graph_at=1.0, pub_match_at=1.5, reader_match_at=3.0, latency=0.5)
    assert wait_until(lambda: subscription_ready(net, net, '/cam', 'fusion_node', '/ns'), 30.0,
                      net.spin_once, net.clock)
    # sending the counted pairs right away, as the old helper did, loses the first ones
    assert net.clock.now < net.reader_match_at
    stamps = priming_stamps(200.0)
    sends = handshake(lambda i: net.send(stamps[i]), lambda: bool(net.fused), net.spin_once,
                      timeout=60.0, resend_every=1.0, clock=net.clock)
    assert sends is not None and sends >= 2           # the first priming pair was lost
    assert net.lost and net.lost[0] == stamps[0]
    assert set(net.fused) <= set(stamps[:sends])      # what came back is priming only
    assert net.clock.now >= net.reader_match_at       # returns only once the node hears
    # after the handshake, every counted pair sent is received and fused
    counted = [200.0 + i / 10 for i in range(10)]
    for stamp in counted:
        net.send(stamp)
        assert wait_until(lambda s=stamp: s in net.fused, 5.0, net.spin_once, net.clock)
    assert not set(counted) & set(net.lost)


def test_handshake_returns_at_once_when_the_first_pair_comes_back():
    net = FakeNetwork(reader_match_at=0.0, latency=0.3)
    sends = handshake(lambda i: net.send(float(i)), lambda: bool(net.fused), net.spin_once,
                      timeout=10.0, resend_every=1.0, clock=net.clock)
    assert sends == 1
    assert net.clock.now == pytest.approx(0.3)


def test_handshake_gives_up_after_the_timeout():
    net = FakeNetwork(reader_match_at=1e9)
    sends = handshake(lambda i: net.send(float(i)), lambda: bool(net.fused), net.spin_once,
                      timeout=10.0, resend_every=2.0, clock=net.clock)
    assert sends is None
    assert 10.0 <= net.clock.now <= 10.1
    assert len(net.sent) == 5  # one every 2 s


def test_priming_stamps_precede_the_counted_pairs_within_a_second():
    stamps = priming_stamps(200.0)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert 200.0 - 1.0 < stamps[0]       # no jump back that restarts the synchroniser
    assert stamps[-1] <= 200.0 - 0.1     # clear of the first counted pair (slop 0.02 .. 0.1)
    assert len(stamps) >= 60 / 2.0       # enough for a 60 s handshake resending every 2 s
