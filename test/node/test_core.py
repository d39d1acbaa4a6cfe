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

"""The node core over an in-memory transport: lifecycle, pairing, worker, bad input, outputs."""

import logging
import threading

import cv2
from node_support import (balanced, FakePipeline, H, listen, make_core, NS, send_pair,
                          thermal_msg, visible_msg, W)
import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.transport.base import SENSOR_DATA
from sgdfuse_ros.transport.memory import MemoryTransport


def test_lifecycle_creates_and_releases_everything():
    core, t = make_core(factory=FakePipeline)
    core.configure()
    for topic in ('fused/image', 'fused/camera_info', 'semantic/labels', 'semantic/targets',
                  'semantic/overlay'):
        assert t.publishers[f'{NS}/{topic}'], topic
    assert t.publishers['/diagnostics']
    assert not any(t.subscriptions.values())  # inactive: nothing subscribed
    core.activate()
    pipeline = FakePipeline.instances[-1]
    assert len(pipeline.calls) == 1  # warmed up with one dummy frame
    subscribed = {topic: s[0] for topic, s in t.subscriptions.items() if s}
    assert subscribed[f'{NS}/thermal/image_raw'].typename == messages.IMAGE
    assert subscribed[f'{NS}/rgb/image_raw'].qos == SENSOR_DATA  # best effort, depth 5
    assert f'{NS}/rgb/camera_info' in subscribed
    with pytest.raises(ConfigError, match='activate needs the inactive state'):
        core.activate()
    core.deactivate()
    assert pipeline.closed and core.pipeline is None
    assert all(s.closed for subs in t.subscriptions.values() for s in subs)
    core.cleanup()
    assert all(p.closed for pubs in t.publishers.values() for p in pubs)
    assert all(timer.cancelled for timer in t.timers)
    core.configure()  # and round again
    core.shutdown()
    assert core.state == 'finalized'


def test_reliable_qos_parameter():
    core, t = make_core({'qos.reliability': 'reliable', 'qos.depth': 3}, factory=FakePipeline)
    core.configure()
    core.activate()
    qos = t.subscriptions[f'{NS}/thermal/image_raw'][0].qos
    assert (qos.reliability, qos.depth) == ('reliable', 3)
    core.shutdown()


def test_pair_is_fused_with_the_visible_stamp_and_frame(scene):
    core, t = make_core()
    core.configure()
    core.activate()
    listen(t, 'semantic/targets')  # computed only while someone reads them
    info = messages.camera_info_msg(W, H, messages.make_header(1.0, 'rgb_optical'),
                                    k=np.array([80.0, 0, 48, 0, 80, 32, 0, 0, 1]))
    t.publish('rgb/camera_info', info)
    send_pair(t, scene, 10.0)
    assert core.process_pending()
    fused = t.sent('fused/image')
    assert len(fused) == 1
    out = {topic: t.sent(topic)[0] for topic in ('fused/image', 'fused/camera_info',
                                                 'semantic/labels', 'semantic/targets')}
    for msg in out.values():
        assert messages.stamp_nanoseconds(msg) == 10_000_000_000  # the visible image's stamp
        assert msg.header.frame_id == 'rgb_optical'
    image, encoding = messages.image_from_msg(out['fused/image'])
    assert encoding == 'bgr8' and image.shape == (H, W, 3)
    assert out['semantic/labels'].encoding == 'mono16'
    assert out['semantic/targets'].encoding == 'mono8'
    assert (out['fused/camera_info'].width, out['fused/camera_info'].height) == (W, H)
    assert out['fused/camera_info'].k[0] == pytest.approx(80.0)
    # content: the warm people, dark in the visible image, are bright in the fused image
    _, vis, targets = scene
    fused_y = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float)
    vis_y = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY).astype(float)
    assert fused_y[targets].mean() > vis_y[targets].mean() + 30
    labels, _ = messages.image_from_msg(out['semantic/labels'])
    assert (labels[targets] > 0).mean() > 0.5
    stats = core.stats()
    # statistics name the inputs after their topics (the code's 'visible' is 'rgb' there)
    assert list(stats['inputs']) == ['thermal', 'rgb']
    assert stats['inputs']['thermal']['published'] == stats['inputs']['rgb']['published'] == 1
    assert stats['prior']['source'] == 'thermal'
    balanced(core)
    core.shutdown()


def test_output_frame_id_and_mono8_encoding(scene):
    core, t = make_core({'output.frame_id': 'fused_frame', 'output.encoding': 'mono8'},
                        factory=FakePipeline)
    core.configure()
    core.activate()
    send_pair(t, scene, 1.0)
    core.process_pending()
    msg = t.sent('fused/image')[0]
    assert msg.encoding == 'mono8' and msg.header.frame_id == 'fused_frame'
    core.shutdown()


def test_stamps_beyond_slop_are_not_fused(scene):
    core, t = make_core({'sync.slop': 0.01}, factory=FakePipeline)
    core.configure()
    core.activate()
    thermal, vis, _ = scene
    t.publish('thermal/image_raw', thermal_msg(thermal, 1.0))
    t.publish('rgb/image_raw', visible_msg(vis, 1.02))
    t.publish('thermal/image_raw', thermal_msg(thermal, 1.1))
    assert not core.process_pending()
    stats = core.stats()['inputs']
    # 1.0 and 1.02 found no partner within 10 ms; 1.1 still waits for one
    assert stats['thermal']['dropped']['unmatched'] == stats['rgb']['dropped']['unmatched'] == 1
    assert stats['thermal']['pending'] == 1 and stats['rgb']['pending'] == 0
    balanced(core)
    core.shutdown()
    stats = core.stats()['inputs']
    assert stats['thermal']['pending'] == 0 and stats['thermal']['dropped']['unmatched'] == 2
    assert t.sent('fused/image') == []
    balanced(core)


def test_stamp_jump_back_resets_the_synchroniser(scene):
    core, t = make_core(factory=FakePipeline)
    core.configure()
    core.activate()
    for stamp in (100.0, 100.1):
        send_pair(t, scene, stamp)
        core.process_pending()
    for stamp in (0.0, 0.1):  # a looping bag starts again
        send_pair(t, scene, stamp)
        core.process_pending()
    assert [messages.stamp_seconds(m) for m in t.sent('fused/image')] == \
        pytest.approx([100.0, 100.1, 0.0, 0.1])
    assert core.stats()['output']['sync_resets'] == 1
    balanced(core)
    core.shutdown()


def test_busy_worker_drops_replaced_pairs_instead_of_queueing(scene):
    gate = threading.Event()
    core, t = make_core(factory=lambda config: FakePipeline(config, gate), threaded=True)
    core.configure()
    core.activate()
    pipeline = FakePipeline.instances[-1]
    pipeline.entered.clear()
    send_pair(t, scene, 1.0)
    assert pipeline.entered.wait(5.0)  # the worker holds pair 1
    send_pair(t, scene, 2.0)           # waits in the mailbox
    send_pair(t, scene, 3.0)           # replaces pair 2: dropped as busy
    send_pair(t, scene, 4.0)           # replaces pair 3: dropped as busy
    stats = core.stats()['inputs']
    assert stats['thermal']['dropped']['busy'] == stats['rgb']['dropped']['busy'] == 2
    assert stats['thermal']['pending'] == 2  # pair 1 in the worker, pair 4 in the mailbox
    balanced(core)
    gate.set()
    assert core.wait_idle(5.0)
    stamps = [messages.stamp_seconds(m) for m in t.sent('fused/image')]
    assert stamps == pytest.approx([1.0, 4.0])  # the newest pair, never the stale ones
    balanced(core)
    core.shutdown()
    balanced(core)


def test_bad_frames_are_skipped_counted_and_warned_once(scene, caplog):
    core, t = make_core({'limits.max_input_pixels': 20_000, 'warn.period_s': 60.0})
    core.configure()
    core.activate()
    thermal, vis, _ = scene
    header = messages.make_header(1.0, 'thermal_optical')
    broken = messages.msg_type(messages.IMAGE)(
        header=header, height=H, width=W, encoding='mono16', is_bigendian=0, step=W * 2,
        data=np.zeros(W * H, np.uint8))  # half the bytes
    big = np.zeros((200, 200), np.uint16)
    with caplog.at_level(logging.WARNING):
        t.publish('thermal/image_raw',
                  thermal_msg(np.zeros((H, W, 3), np.uint8), 1.0, 'bgr8'))
        t.publish('thermal/image_raw',
                  thermal_msg(np.zeros((H, W, 3), np.uint8), 1.1, 'bgr8'))
        t.publish('thermal/image_raw', broken)
        t.publish('thermal/image_raw', thermal_msg(big, 1.2))
        t.publish('rgb/image_raw', visible_msg(thermal, 1.3, 'mono16'))
        send_pair(t, scene, 2.0)  # the node keeps working
        assert core.process_pending()
    stats = core.stats()['inputs']
    assert stats['thermal']['rejected'] == {'encoding': 2, 'decode': 1, 'size': 1, 'pipeline': 0}
    assert stats['rgb']['rejected']['encoding'] == 1
    assert len(t.sent('fused/image')) == 1
    encoding_warnings = [r for r in caplog.records if "encoding 'bgr8'" in r.getMessage()]
    assert len(encoding_warnings) == 1  # rate limited per topic and reason
    assert 'step' in caplog.text or 'bytes' in caplog.text
    balanced(core)
    core.shutdown()


def test_pipeline_errors_reject_the_pair_not_the_node(scene):
    core, t = make_core()
    core.configure()
    core.activate()
    thermal, vis, _ = scene
    t.publish('thermal/image_raw', thermal_msg(thermal[:32, :48], 1.0))  # other size
    t.publish('rgb/image_raw', visible_msg(vis, 1.0))
    assert core.process_pending()
    send_pair(t, scene, 2.0)
    assert core.process_pending()
    stats = core.stats()
    assert stats['inputs']['thermal']['rejected']['pipeline'] == 1
    assert stats['inputs']['rgb']['rejected']['pipeline'] == 1
    assert stats['output']['pipeline_errors'] == 1 and len(t.sent('fused/image')) == 1
    balanced(core)
    core.shutdown()


def test_compressed_inputs_follow_remapped_base_topics(scene):
    t = MemoryTransport(NS, 'fusion_node', remaps={f'{NS}/thermal/image_raw': '/flir/raw'})
    core, _ = make_core({'input.compressed': True}, transport=t)
    core.configure()
    core.activate()
    assert t.subscription_count('/flir/raw/compressed') == 1
    assert t.subscriptions['/flir/raw/compressed'][0].typename == messages.COMPRESSED
    thermal, vis, targets = scene
    t.publish('/flir/raw/compressed', messages.compressed_msg(
        thermal, messages.make_header(1.0, 'thermal_optical'), 'png'))
    t.publish('rgb/image_raw/compressed', messages.compressed_msg(
        vis, messages.make_header(1.0, 'rgb_optical'), 'jpeg'))
    t.publish('rgb/image_raw/compressed', messages.msg_type(messages.COMPRESSED)(
        header=messages.make_header(1.1, 'rgb_optical'), format='jpeg',
        data=np.frombuffer(b'not a jpeg', np.uint8)))
    assert core.process_pending()
    assert len(t.sent('fused/image')) == 1
    assert core.stats()['inputs']['rgb']['rejected']['decode'] == 1
    balanced(core)
    core.shutdown()


@pytest.mark.parametrize('enabled', [True, False])
def test_overlay_only_while_someone_subscribes(scene, enabled):
    core, t = make_core({'output.overlay': enabled}, factory=FakePipeline)
    core.configure()
    core.activate()
    send_pair(t, scene, 1.0)
    core.process_pending()
    assert t.sent('semantic/overlay') == []
    received = []
    t.create_subscription('semantic/overlay', messages.IMAGE, received.append, SENSOR_DATA)
    send_pair(t, scene, 2.0)
    core.process_pending()
    assert len(received) == (1 if enabled else 0)
    if enabled:
        assert received[0].encoding == 'bgr8' and messages.stamp_seconds(received[0]) == 2.0
    assert core.stats()['output']['overlay_published'] == len(received)
    core.shutdown()
