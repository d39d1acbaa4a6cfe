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
Live, across processes, over Cyclone DDS on the loopback interface.

A synthetic camera process publishes thermal (mono16) and RGB (bgr8) at 30 Hz with stamp jitter;
``sgdfuse live`` runs the node in its own process; this process subscribes to the outputs (and
the inputs) as a ROS 2 node would. Checked: stamps, sizes, encodings, content (warm people that
the RGB camera does not see are visible in the fused image), drop accounting, diagnostics, and
that the bytes on the wire are exactly ``rosbags``' ROS 2 CDR serialisation.

A unique DDS domain per run, loopback only, no multicast; every wait is bounded.
"""

from collections import defaultdict
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import cv2
import pytest

pytest.importorskip('cyclonedds')

from sgdfuse_ros import messages  # noqa: E402
from sgdfuse_ros.config import load_config  # noqa: E402
from sgdfuse_ros.node.core import accounting_errors  # noqa: E402
from sgdfuse_ros.pipeline.fusion_pipeline import fusion_outputs  # noqa: E402
from sgdfuse_ros.transport.base import QosProfile  # noqa: E402
from sgdfuse_ros.transport.dds import DdsTransport, localhost_config  # noqa: E402
from sgdfuse_ros.transport.synthetic_camera import bad_kind, SyntheticCamera  # noqa: E402
from waiting import as_at_a_terminal, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NS = '/live_test'
WIDTH, HEIGHT = 320, 256
FRAMES, RATE, BAD_EVERY = 150, 30.0, 40
SLOP = 0.015  # below half the frame period: a frame can only pair with its own partner
DOMAIN = 100 + os.getpid() % 120  # unique per run: parallel runs do not see each other
OUTPUTS = ('fused/image', 'fused/camera_info', 'semantic/labels', 'semantic/targets',
           'semantic/detections', 'semantic/overlay', '/diagnostics')
TYPES = {'fused/camera_info': messages.CAMERA_INFO, '/diagnostics': messages.DIAGNOSTIC_ARRAY,
         'semantic/detections': messages.DETECTION_ARRAY}


def _env():
    env = dict(os.environ, CYCLONEDDS_URI=localhost_config(), PYTHONUNBUFFERED='1')
    env.pop('ROS_DOMAIN_ID', None)
    env.pop('ROS_LOCALHOST_ONLY', None)
    return env


@pytest.fixture(scope='module')
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('live')
    stats_path, camera_log = tmp / 'stats.json', tmp / 'camera.json'
    received = defaultdict(list)  # topic -> [(cdr bytes, receive time)]
    listener = DdsTransport(DOMAIN, NS, 'test_listener', config_xml=localhost_config())
    processes = []
    try:
        subscriptions = {}
        for topic in OUTPUTS:
            subscriptions[topic] = listener.create_subscription(
                topic, TYPES.get(topic, messages.IMAGE),
                lambda data, info, topic=topic: received[topic].append((data, time.time())),
                QosProfile('reliable', 200), raw=True)
        for topic in ('thermal/image_raw', 'rgb/image_raw'):  # as a second camera consumer
            listener.create_subscription(
                topic, messages.IMAGE,
                lambda data, info, topic=topic: received[topic].append((data, time.time())),
                QosProfile('best_effort', 50), raw=True)
        node = subprocess.Popen(
            [sys.executable, '-m', 'sgdfuse_ros.cli', 'live', '--namespace', NS,
             '--domain-id', str(DOMAIN), '--duration', '60', '--status-period', '0',
             '--set', f'sync.slop={SLOP}',
             # the transport is under test, at 30 Hz: the classical stages keep up on any CPU
             '--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0',
             '--stats-json', str(stats_path)],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=as_at_a_terminal)
        processes.append(node)
        # the targets are selected only while someone reads them: all readers matched first
        wait_until(lambda: all(subscriptions[topic].publisher_count() > 0 for topic in
                               ('fused/image', 'semantic/targets', 'semantic/detections'))
                   or node.poll() is not None, "the node's publishers", 60, poll=0.05)
        assert node.poll() is None, node.stdout.read()
        camera = subprocess.Popen(
            [sys.executable, '-m', 'sgdfuse_ros.transport.synthetic_camera', '--namespace', NS,
             '--domain-id', str(DOMAIN), '--frames', str(FRAMES), '--rate', str(RATE),
             '--size', f'{WIDTH}x{HEIGHT}', '--jitter-ms', '3', '--bad-every', str(BAD_EVERY),
             '--wait-subscribers', '2', '--wait-timeout', '60', '--log', str(camera_log)],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(camera)
        camera_output, _ = camera.communicate(timeout=120)
        assert camera.returncode == 0, camera_output
        # let the last pairs through, then stop the node as a user would (Ctrl-C)
        count = -1
        deadline = time.monotonic() + 10
        while count != len(received['fused/image']) and time.monotonic() < deadline:
            count = len(received['fused/image'])
            time.sleep(0.5)
        node.send_signal(signal.SIGINT)
        node_output, _ = node.communicate(timeout=30)
        time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        listener.close()
    return {'node_rc': node.returncode, 'node_output': node_output,
            'stats': json.loads(stats_path.read_text()) if stats_path.exists() else None,
            'camera': json.loads(camera_log.read_text()), 'received': dict(received)}


@pytest.fixture(scope='module')
def scenes():
    return SyntheticCamera(WIDTH, HEIGHT)


def _decoded(live, topic):
    typename = TYPES.get(topic, messages.IMAGE)
    return [messages.deserialize(data, typename) for data, _ in live['received'].get(topic, [])]


def _frames_by_visible_stamp(live):
    return {f['visible_ns']: f for f in live['camera']['frames']}


def test_node_process_stops_cleanly_with_balanced_books(live):
    assert live['node_rc'] == 0, live['node_output']
    stats = live['stats']
    assert accounting_errors(stats) == []
    for source in ('thermal', 'rgb'):
        assert stats['inputs'][source]['pending'] == 0
        assert stats['inputs'][source]['received'] <= FRAMES


def test_fused_outputs_carry_source_stamps_sizes_and_encodings(live):
    frames = _frames_by_visible_stamp(live)
    fused = _decoded(live, 'fused/image')
    # how many pairs the node fuses depends on the machine's load (it drops, by design, what
    # arrives while it is busy); what it published must arrive, and enough to check content
    published = live['stats']['inputs']['rgb']['published']
    assert len(fused) >= 10, f'only {len(fused)} fused images of {FRAMES} pairs'
    assert len(fused) >= 0.9 * published, f'{len(fused)} received of {published} published'
    for msg in fused:
        stamp = messages.stamp_nanoseconds(msg)
        assert stamp in frames, 'fused stamp is not the stamp of a published RGB frame'
        frame = frames[stamp]
        assert frame['bad'] is None  # pairs with a broken thermal frame were never fused
        assert abs(frame['thermal_ns'] - frame['visible_ns']) <= SLOP * 1e9
        assert msg.header.frame_id == 'rgb_optical'
        assert (msg.width, msg.height, msg.encoding) == (WIDTH, HEIGHT, 'bgr8')
    stamps = sorted(messages.stamp_nanoseconds(m) for m in fused)
    assert stamps == sorted(set(stamps))  # each pair fused once
    for topic, encoding in (('semantic/labels', 'mono16'), ('semantic/targets', 'mono8')):
        msgs = _decoded(live, topic)
        assert sorted(messages.stamp_nanoseconds(m) for m in msgs) == stamps, topic
        assert all((m.width, m.height, m.encoding) == (WIDTH, HEIGHT, encoding) for m in msgs)
    infos = _decoded(live, 'fused/camera_info')
    assert sorted(messages.stamp_nanoseconds(m) for m in infos) == stamps
    detections = _decoded(live, 'semantic/detections')  # vision_msgs over the ROS-less DDS too
    assert sorted(messages.stamp_nanoseconds(m) for m in detections) == stamps
    assert all(m.header.frame_id == 'rgb_optical' for m in detections)
    assert any(m.detections for m in detections)
    assert all((m.width, m.height) == (WIDTH, HEIGHT) for m in infos)


def test_drop_accounting_matches_what_was_sent_and_received(live):
    stats, camera = live['stats'], live['camera']
    fused = live['received']['fused/image']
    assert stats['output']['published'] == len(fused)  # reliable output: nothing lost
    for source in ('thermal', 'rgb'):
        assert stats['inputs'][source]['published'] == len(fused)
    bad = [bad_kind(i, BAD_EVERY) for i in range(FRAMES)]
    sent = {kind: bad.count(kind) for kind in ('encoding', 'decode')}
    rejected = stats['inputs']['thermal']['rejected']
    assert 1 <= rejected['encoding'] + rejected['decode'] <= sum(sent.values())
    assert rejected['encoding'] <= sent['encoding'] and rejected['decode'] <= sent['decode']
    assert sum(stats['inputs']['rgb']['rejected'].values()) == 0
    # an RGB frame whose thermal partner was rejected found no partner: dropped, counted
    assert stats['inputs']['rgb']['dropped']['unmatched'] >= rejected['encoding'] + \
        rejected['decode']
    assert len(camera['frames']) == FRAMES


def test_warm_targets_show_in_the_fused_image(live, scenes):
    frames = _frames_by_visible_stamp(live)
    checked = 0
    for msg in _decoded(live, 'fused/image')[::10]:
        index = frames[messages.stamp_nanoseconds(msg)]['index']
        fused, _ = messages.image_from_msg(msg)
        targets = scenes.targets(index)
        fused_y = cv2.cvtColor(fused, cv2.COLOR_BGR2GRAY).astype(float)
        visible_y = cv2.cvtColor(scenes.visible(index), cv2.COLOR_BGR2GRAY).astype(float)
        assert fused_y[targets].mean() > visible_y[targets].mean() + 30
        checked += 1
    assert checked >= 5


def test_wire_bytes_are_the_rosbags_cdr_serialisation(live, scenes):
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline

    frames = {f['index']: f for f in live['camera']['frames']}
    by_thermal = {f['thermal_ns']: f for f in frames.values()}
    inputs = [messages.deserialize(data, messages.IMAGE)
              for data, _ in live['received']['thermal/image_raw'][:3]]
    for (data, _), msg in zip(live['received']['thermal/image_raw'], inputs):
        frame = by_thermal[messages.stamp_nanoseconds(msg)]
        expected = scenes.thermal_msg(frame['index'], frame['thermal_ns'], frame['bad'])
        assert data == messages.serialize(expected)  # what the camera process put on the wire
    by_visible = _frames_by_visible_stamp(live)
    fused = live['received']['fused/image']
    labels = {messages.stamp_nanoseconds(messages.deserialize(d, messages.IMAGE)): d
              for d, _ in live['received']['semantic/labels']}
    infos = {messages.stamp_nanoseconds(messages.deserialize(d, messages.CAMERA_INFO)): d
             for d, _ in live['received']['fused/camera_info']}
    pipeline = FusionPipeline(load_config(overrides={  # the node's stages (see `live`)
        'first_stage.type': 'laplacian', 'refiner.steps': 0}))
    compared = 0
    for data, _ in fused[10:40:10]:  # after the first camera_info surely arrived
        stamp = messages.stamp_nanoseconds(messages.deserialize(data, messages.IMAGE))
        frame = by_visible[stamp]
        index = frame['index']
        result = pipeline.process(scenes.thermal(index), scenes.visible(index), 'mono16', 'bgr8')
        expected = fusion_outputs(
            result, messages.make_time(nanoseconds=stamp), 'rgb_optical', 'bgr8',
            camera_info=scenes.camera_info_msg(frame['visible_ns']))
        assert data == messages.serialize(expected['fused/image'])
        assert labels[stamp] == messages.serialize(expected['semantic/labels'])
        assert infos[stamp] == messages.serialize(expected['fused/camera_info'])
        compared += 1
    pipeline.close()
    assert compared == 3


def test_overlay_is_published_to_a_subscriber(live):
    overlays = _decoded(live, 'semantic/overlay')
    fused = live['received']['fused/image']
    assert len(overlays) == live['stats']['output']['overlay_published'] > 0.9 * len(fused)
    assert all(m.encoding == 'bgr8' for m in overlays)


def test_diagnostics_describe_the_running_node(live):
    arrays = _decoded(live, '/diagnostics')
    assert len(arrays) >= 2
    names = {s.name for s in arrays[-1].status}
    assert names == {f'live_test/fusion_node: {task}'
                     for task in ('inputs', 'synchronisation', 'processing', 'alignment')}
    rates = [float(kv.value) for array in arrays for s in array.status for kv in s.values
             if kv.key == 'thermal rate (Hz)']
    assert max(rates) > 15.0
    latencies = [kv.key for array in arrays for s in array.status for kv in s.values]
    assert 'latency total p90 (ms)' in latencies and 'prior source' in latencies
