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
The node's logic over an in-memory transport.

Lifecycle, sync, latest-frame worker, bad input, outputs, diagnostics, parameters.
"""

import logging
import threading

import cv2
import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.node.accounting import accounting_errors
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.node.diagnostics import as_dict, ERROR, OK, WARN
from sgdfuse_ros.pipeline.fusion_pipeline import FusionResult
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.transport.base import SENSOR_DATA
from sgdfuse_ros.transport.memory import MemoryTransport

NS = '/cam'
W, H = 96, 64


@pytest.fixture(scope='module')
def scene():
    ir, vis, targets = make_pair(5, (W, H))
    return (7000 + 60 * ir.astype(np.uint16)).astype(np.uint16), vis, targets


class FakePipeline:
    """Records calls; can block inside process() until released."""

    instances = []

    def __init__(self, config, gate=None):
        self.config = config
        self.device = 'cpu'
        self.calls = []
        self.closed = False
        self.gate = gate
        self.entered = threading.Event()
        FakePipeline.instances.append(self)

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        self.calls.append((thermal.shape, thermal_encoding, visible_encoding))
        self.entered.set()
        if self.gate is not None and len(self.calls) > 1:  # the warm-up call never blocks
            assert self.gate.wait(5.0), 'test never released the pipeline'
        gray = visible.mean(axis=2).astype(np.uint8) if visible.ndim == 3 else visible
        prior = SemanticPrior.empty(gray.shape, 'thermal')
        return FusionResult(np.dstack([gray] * 3), gray, prior, thermal.astype(np.float32),
                            visible, gray.astype(np.float32) / 255, {'total': 1.0})

    def close(self):
        self.closed = True


def make_core(overrides=None, factory=None, threaded=False, transport=None):
    transport = transport or MemoryTransport(NS, 'fusion_node', roundtrip=True)
    config = load_config(overrides=overrides or {})
    core = FusionNodeCore(transport, config, name=NS + '/fusion_node',
                          pipeline_factory=factory, threaded=threaded)
    return core, transport


def thermal_msg(image, stamp, encoding='mono16', frame='thermal_optical'):
    return messages.image_msg(image, messages.make_header(float(stamp), frame), encoding)


def visible_msg(image, stamp, encoding='bgr8', frame='rgb_optical'):
    return messages.image_msg(image, messages.make_header(float(stamp), frame), encoding)


def send_pair(transport, scene, stamp, jitter=0.003):
    thermal, vis, _ = scene
    transport.publish('thermal/image_raw', thermal_msg(thermal, stamp + jitter))
    transport.publish('rgb/image_raw', visible_msg(vis, stamp))


def balanced(core):
    assert accounting_errors(core.stats()) == []


# --- lifecycle ----------------------------------------------------------------------------------

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


# --- synchronisation and outputs -----------------------------------------------------------------

def test_pair_is_fused_with_the_visible_stamp_and_frame(scene):
    core, t = make_core()
    core.configure()
    core.activate()
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


# --- latest-frame worker -------------------------------------------------------------------------

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


# --- bad input -----------------------------------------------------------------------------------

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


# --- overlay -------------------------------------------------------------------------------------

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


# --- diagnostics ---------------------------------------------------------------------------------

def test_diagnostics_report_rates_latency_drops_and_prior(scene):
    core, t = make_core({'warn.period_s': 60.0})
    core.configure()
    t.fire_timers()
    report = as_dict(t.sent('/diagnostics')[-1])
    assert report['cam/fusion_node: processing']['level'] == ERROR  # inactive
    core.activate()
    for i in range(6):
        send_pair(t, scene, 1.0 + i / 30)
        core.process_pending()
    t.publish('thermal/image_raw', thermal_msg(np.zeros((H, W, 3), np.uint8), 5.0, 'bgr8'))
    t.fire_timers()
    array = t.sent('/diagnostics')[-1]
    assert array.__msgtype__ == messages.DIAGNOSTIC_ARRAY
    report = as_dict(array)
    inputs = report['cam/fusion_node: inputs']
    assert inputs['level'] == WARN and 'rejected' in inputs['message']
    assert float(inputs['values']['thermal rate (Hz)']) > 0
    assert inputs['values']['thermal rejected (encoding)'] == '1'
    assert inputs['values']['rgb topic'] == f'{NS}/rgb/image_raw'
    processing = report['cam/fusion_node: processing']
    assert processing['level'] == OK
    values = processing['values']
    for key in ('latency total p50 (ms)', 'latency prior p90 (ms)', 'latency end_to_end p50 (ms)',
                'output rate (Hz)', 'dropped (worker busy)', 'device', 'prior source',
                'prior age (s)'):
        assert key in values, key
    assert values['prior source'] == 'thermal' and values['device'] == 'cpu'
    assert values['published'] == '6'
    # how the CPU is used (thread_policy): the shipped default, the count in use
    assert values['thread policy'] == 'adaptive' and values['backend'] in ('onnx', 'torch')
    assert int(values['threads']) >= 1 and 'omp wait policy' in values
    sync = report['cam/fusion_node: synchronisation']
    assert sync['values']['pairs'] == '6' and sync['values']['thermal dropped (unmatched)'] == '0'
    assert all(s.hardware_id == 'cpu' for s in array.status)
    core.shutdown()


def test_diagnostics_timer_follows_its_period_parameter():
    core, t = make_core(factory=FakePipeline)
    core.configure()
    assert [timer.period_s for timer in t.timers if not timer.cancelled] == [1.0]
    core.set_parameters({'diagnostics.period_s': 0.5})
    assert [timer.period_s for timer in t.timers if not timer.cancelled] == [0.5]
    core.shutdown()


# --- parameters ----------------------------------------------------------------------------------

def test_runtime_parameters_are_validated_not_clamped(scene):
    built = []

    def factory(config):
        built.append(config)
        return FakePipeline(config)

    core, t = make_core(factory=factory)
    core.configure()
    core.activate()
    with pytest.raises(ConfigError, match='above the maximum'):
        core.set_parameters({'sync.slop': 11.0})
    with pytest.raises(ConfigError, match='read-only'):
        core.set_parameters({'prior.source': 'none'})
    with pytest.raises(ConfigError, match='unknown parameter'):
        core.set_parameters({'sync.slopp': 0.1})
    with pytest.raises(ConfigError, match='below the minimum'):  # all or nothing
        core.set_parameters({'sync.slop': 0.03, 'sync.queue_size': 0})
    assert core.config['sync.slop'] == 0.02  # nothing applied from the rejected sets
    # node parameters apply at once, without rebuilding the pipeline
    core.set_parameters({'sync.slop': 0.03, 'output.encoding': 'mono8'})
    assert core.sync.slop == 0.03 and len(built) == 1
    send_pair(t, scene, 1.0)
    core.process_pending()
    assert t.sent('fused/image')[-1].encoding == 'mono8'
    # a pipeline parameter rebuilds the pipeline before the next frame
    core.set_parameters({'prior.thermal.k': 2.5})
    send_pair(t, scene, 2.0)
    core.process_pending()
    assert len(built) == 2 and built[-1]['prior.thermal.k'] == 2.5
    assert FakePipeline.instances[-2].closed
    core.shutdown()


def test_read_only_parameters_change_while_unconfigured():
    core, _ = make_core(factory=FakePipeline)
    core.set_parameters({'qos.depth': 7})
    core.configure()
    with pytest.raises(ConfigError, match='read-only'):
        core.set_parameters({'qos.depth': 8})
    assert core.config['qos.depth'] == 7
    core.shutdown()


def test_a_pipeline_that_fails_to_load_leaves_the_node_inactive():
    def factory(config):
        raise RuntimeError('CUDA out of memory')

    core, t = make_core(factory=factory)
    core.configure()
    with pytest.raises(ConfigError, match='could not build the fusion pipeline: RuntimeError'):
        core.activate()
    assert core.state == 'inactive' and not any(t.subscriptions.values())
    core.shutdown()
