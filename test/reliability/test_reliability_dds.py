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
Bad input over the DDS transport.

Messages arrive as CDR bytes that the transport deserialises (``rosbags``) before the node sees
them: the node core runs on a Cyclone DDS participant (loopback, a domain of its own, reliable QoS
so nothing is lost on the wire), a second participant publishes good and malformed images, and
every one is accounted for.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip('cyclonedds')

from sgdfuse_ros import messages  # noqa: E402
from sgdfuse_ros.config import load_config  # noqa: E402
from sgdfuse_ros.node.core import FusionNodeCore  # noqa: E402
from sgdfuse_ros.node.diagnostics import as_dict, WARN  # noqa: E402
from sgdfuse_ros.transport.base import QosProfile  # noqa: E402
from sgdfuse_ros.transport.dds import DdsTransport, localhost_config  # noqa: E402
from test_reliability_support import big_endian_mono16, H, image, raw_image, scene, W  # noqa: E402
from waiting import wait_until  # noqa: E402

NS = '/rel_dds'
DOMAIN = 100 + (os.getpid() + 60) % 120  # not test_live_dds's domain, not another run's
RELIABLE = QosProfile('reliable', 100)


@pytest.fixture(scope='module')
def run():
    """Publish the sequence below, let the node take it all, return what happened."""
    thermal, visible, _ = scene()
    nan_frame = 20 + thermal.astype(np.float32) / 100
    nan_frame[::3] = np.nan
    nan_frame[2, :6] = np.inf
    # (stamp, thermal message or None, rgb message or None)
    sequence = [
        (1.0, image(thermal, 1.003, 'mono16'), image(visible, 1.0, 'bgr8')),
        (2.0, raw_image(2.0, H, W, 'yuv422', 2 * W, thermal.tobytes()),
         image(visible, 2.0, 'bgr8')),
        (3.0, raw_image(3.0, H, W, 'mono16', 2 * W, thermal.tobytes()[:100]), None),
        (4.0, raw_image(4.0, 0, 0, 'mono16', 0, b''), None),
        (5.0, None, raw_image(5.0, H, W, 'bgr8', W, visible.tobytes())),
        (6.0, raw_image(6.0, 100_000, 100_000, 'mono16', 200_000, b''), None),
        (7.0, None, image(thermal, 7.0, 'mono16')),
        (8.0, big_endian_mono16(thermal, 8.003), image(visible, 8.0, 'bgr8')),
        (9.0, image(thermal, 9.003, 'mono16'), image(visible, 9.0, 'bgr8')),
        (10.0, image(nan_frame, 10.003, '32FC1'), image(visible, 10.0, 'bgr8')),
        (11.0, image(np.full((H, W), np.nan, np.float32), 11.003, '32FC1'),
         image(visible, 11.0, 'bgr8')),
        (12.0, image(thermal, 12.003, 'mono16'), image(visible, 12.0, 'bgr8')),
    ]
    camera = DdsTransport(DOMAIN, NS, 'bad_camera', config_xml=localhost_config())
    node_transport = DdsTransport(DOMAIN, NS, 'fusion_node')  # same (configured) domain
    config = load_config(overrides={'qos.reliability': 'reliable', 'qos.depth': 100,
                                    'warn.period_s': 0.0})
    core = FusionNodeCore(node_transport, config, name=NS + '/fusion_node')
    fused = []
    try:
        core.configure()
        core.activate()
        camera.create_subscription('fused/image', messages.IMAGE, fused.append, RELIABLE)
        thermal_pub = camera.create_publisher('thermal/image_raw', messages.IMAGE, RELIABLE)
        visible_pub = camera.create_publisher('rgb/image_raw', messages.IMAGE, RELIABLE)
        wait_until(lambda: thermal_pub.subscription_count() and visible_pub.subscription_count(),
                   "the node's subscriptions")
        sent = {'thermal': 0, 'rgb': 0}
        for stamp, thermal_msg, visible_msg in sequence:
            for source, publisher, msg in (('thermal', thermal_pub, thermal_msg),
                                           ('rgb', visible_pub, visible_msg)):
                if msg is not None:
                    publisher.publish(msg)
                    sent[source] += 1
                    wait_until(lambda s=source: core.stats()['inputs'][s]['received'] == sent[s],
                               f'{source} message at {stamp}')
            assert core.wait_idle(20.0)
        wait_until(lambda: len(fused) == core.stats()['output']['published'], 'the outputs')
        # malformed CDR never leaves the writer: Cyclone DDS checks it against the type
        from cyclonedds.core import DDSException
        good = messages.serialize(image(thermal, 13.0, 'mono16'))
        cdr_refused = []
        for cut in (good[: len(good) // 2], good[:20], good[:4] + b'\xff' * 40):
            try:
                thermal_pub.publish_raw(cut)
            except DDSException as err:
                cdr_refused.append(str(err))
        time.sleep(0.3)
        before_shutdown = core.stats()
        diagnostics = as_dict(core.diagnostics())
        core.shutdown()
        after_shutdown = core.stats()
    finally:
        if core.state != 'finalized':
            core.shutdown()
        node_transport.close()  # before the transport that configured the domain
        camera.close()
    return {'sent': sent, 'stats': before_shutdown, 'final': after_shutdown,
            'diagnostics': diagnostics, 'fused': fused, 'cdr_refused': cdr_refused}


def test_every_message_sent_is_accounted_for(run):
    stats = run['stats']
    assert {s: stats['inputs'][s]['received'] for s in ('thermal', 'rgb')} == run['sent']
    balanced_stats = run['final']
    for source in ('thermal', 'rgb'):
        counts = balanced_stats['inputs'][source]
        assert counts['received'] == counts['published'] + sum(counts['dropped'].values()) + \
            sum(counts['rejected'].values()) + counts['pending']
        assert counts['pending'] == 0


def test_each_malformed_image_is_rejected_with_its_reason(run):
    thermal, visible = run['stats']['inputs']['thermal'], run['stats']['inputs']['rgb']
    assert thermal['rejected'] == {'encoding': 1, 'decode': 1, 'size': 2, 'pipeline': 1}
    assert visible['rejected'] == {'encoding': 1, 'decode': 1, 'size': 0, 'pipeline': 1}
    # the RGB frame whose thermal partner was rejected on arrival found no partner
    assert visible['dropped']['unmatched'] == 1 and thermal['dropped']['unmatched'] == 0
    assert thermal['published'] == visible['published'] == 5
    assert run['stats']['output']['pipeline_errors'] == 1


def test_good_pairs_between_bad_ones_are_fused_including_big_endian(run):
    stamps = [messages.stamp_seconds(m) for m in run['fused']]
    assert stamps == pytest.approx([1.0, 8.0, 9.0, 10.0, 12.0])
    by_stamp = {round(messages.stamp_seconds(m)): messages.image_from_msg(m)[0]
                for m in run['fused']}
    np.testing.assert_array_equal(by_stamp[8], by_stamp[9])  # big- and little-endian alike
    assert all(img.shape == (H, W, 3) for img in by_stamp.values())


def test_diagnostics_show_the_rejections(run):
    inputs = next(v for k, v in run['diagnostics'].items() if k.endswith(': inputs'))
    assert inputs['level'] == WARN and 'rejected' in inputs['message']
    assert inputs['values']['thermal rejected (size)'] == '2'
    processing = next(v for k, v in run['diagnostics'].items() if k.endswith(': processing'))
    assert processing['values']['pipeline errors'] == '1'


def test_malformed_cdr_is_refused_at_the_writer_and_never_delivered(run):
    assert len(run['cdr_refused']) == 3
    assert all('BAD_PARAMETER' in text for text in run['cdr_refused'])
    # nothing of it reached the node: it received exactly the well-formed messages sent
    assert run['stats']['inputs']['thermal']['received'] == run['sent']['thermal']
