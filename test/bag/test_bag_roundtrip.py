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
Round trip: make-bag -> replay -> read the output back.

Every pair accounted for, stamps preserved, encodings and sizes right, metadata as ROS 2 Humble
parses it.
"""

from __future__ import annotations

from pathlib import Path
import re
import sqlite3

from bag_support import load_report, make_bag, raw_messages, read_bag, SIZE, stamp_of, \
    tiny_pairs
import cv2
import numpy as np
import pytest
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.prior.targets import box_iou
import yaml

N = 4
QOS_INT_KEYS = ('history', 'depth', 'reliability', 'durability', 'liveliness')
QOS_TIME_KEYS = ('deadline', 'lifespan', 'liveliness_lease_duration')


def assert_humble_metadata(bag):
    """Check what Humble's rosbag2 (metadata_io / yaml.hpp, qos.cpp) reads from metadata.yaml."""
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 8
    assert isinstance(info['storage_identifier'], str)
    assert all(isinstance(p, str) for p in info['relative_file_paths'])
    assert isinstance(info['duration']['nanoseconds'], int)
    assert isinstance(info['starting_time']['nanoseconds_since_epoch'], int)
    assert isinstance(info['message_count'], int)
    assert isinstance(info['compression_format'], str)
    assert isinstance(info['compression_mode'], str)
    for f in info['files']:
        assert {'path', 'starting_time', 'duration', 'message_count'} <= set(f)
    # read as a map by parsers that know version >= 6: must not be null
    assert isinstance(info['custom_data'], dict) and info['custom_data']
    assert all(isinstance(v, str) for v in info['custom_data'].values())
    assert isinstance(info['ros_distro'], str)
    for entry in info['topics_with_message_count']:
        meta = entry['topic_metadata']
        assert isinstance(entry['message_count'], int)
        for key in ('name', 'type', 'serialization_format', 'type_description_hash'):
            assert isinstance(meta[key], str)
        qos_text = meta['offered_qos_profiles']
        assert isinstance(qos_text, str), 'Humble reads offered_qos_profiles as a YAML string'
        profiles = yaml.safe_load(qos_text)
        assert isinstance(profiles, list) and len(profiles) == 1
        for p in profiles:
            for key in QOS_INT_KEYS:
                assert isinstance(p[key], int) and not isinstance(p[key], bool), key
            for key in QOS_TIME_KEYS:
                assert set(p[key]) == {'sec', 'nsec'}
            assert isinstance(p['avoid_ros_namespace_conventions'], bool)
            # rmw enums: keep_last=1, reliable=1, volatile=2, automatic=1
            assert (p['history'], p['reliability'], p['durability'], p['liveliness']) == \
                (1, 1, 2, 1)
    return info


def pairs_by_stamp(inputs, thermal_topic, visible_topic):
    """Map rgb stamp -> (rgb log time, thermal log time) for the make-bag pairing."""
    visible = inputs[visible_topic]
    thermal = inputs[thermal_topic]
    assert len(visible) == len(thermal)
    return {stamp_of(r): (rl, tl) for (rl, r), (tl, _) in zip(visible, thermal)}


@pytest.mark.parametrize('storage,version,rgb_format,thermal_encoding,out_storage', [
    ('sqlite3', 8, 'raw', 'mono16', 'sqlite3'),
    ('mcap', 9, 'jpeg', 'mono8', 'mcap'),
    ('sqlite3', 9, 'jpeg', 'mono16', 'sqlite3'),
    ('mcap', 8, 'raw', 'mono8', 'sqlite3'),
])
def test_make_bag_replay_round_trip(tmp_path, storage, version, rgb_format, thermal_encoding,
                                    out_storage):
    in_bag = make_bag(tmp_path, 'in_bag', '--storage', storage, '--version', str(version),
                      '--rgb-format', rgb_format, '--thermal-encoding', thermal_encoding, n=N)
    visible_topic = '/rgb/image_raw' + ('/compressed' if rgb_format == 'jpeg' else '')

    inputs, in_types = read_bag(in_bag)
    assert len(inputs['/thermal/image_raw']) == len(inputs[visible_topic]) == N
    assert len(inputs['/thermal/camera_info']) == len(inputs['/rgb/camera_info']) == N
    for (_, th), (_, visible) in zip(inputs['/thermal/image_raw'], inputs[visible_topic]):
        offset = abs((th.header.stamp.sec - visible.header.stamp.sec) * 1e9
                     + th.header.stamp.nanosec - visible.header.stamp.nanosec)
        assert offset <= 5e6  # --jitter-ms 5 by default
        assert th.encoding == thermal_encoding
        if thermal_encoding == 'mono16':
            counts = np.frombuffer(bytes(th.data), np.uint16)
            assert counts.min() >= 6900 and counts.max() <= 16383  # 14-bit raw counts
    visible_stamps = [stamp_of(r) for _, r in inputs[visible_topic]]
    steps = np.diff([s + n * 1e-9 for s, n in visible_stamps])
    assert np.allclose(steps, 0.1)  # --rate 10
    if rgb_format == 'jpeg':
        assert in_types[visible_topic] == 'sensor_msgs/msg/CompressedImage'
        assert 'jpeg' in inputs[visible_topic][0][1].format

    out_bag = tmp_path / 'out_bag'
    code = cli(['replay', str(in_bag), '--out', str(out_bag), '--storage', out_storage,
                '--quiet', '--copy-inputs', '--sheet-detections'])
    assert code == 0
    outputs, out_types = read_bag(out_bag)
    fused = outputs['/fused/image']
    assert len(fused) == N
    for topic in ('/fused/camera_info', '/semantic/labels',
                  '/semantic/targets'):
        assert len(outputs[topic]) == N
    # the input topics were copied through, byte for byte
    assert raw_messages(out_bag, visible_topic) == raw_messages(in_bag, visible_topic)
    thermal_topic = '/thermal/image_raw'
    assert raw_messages(out_bag, thermal_topic) == raw_messages(in_bag, thermal_topic)
    assert raw_messages(out_bag, '/rgb/camera_info') == raw_messages(in_bag, '/rgb/camera_info')

    logs = pairs_by_stamp(inputs, '/thermal/image_raw', visible_topic)
    w, h = SIZE
    for topic, expected in (('/fused/image', 'bgr8'), ('/semantic/labels', 'mono16'),
                            ('/semantic/targets', 'mono8')):
        stamps = []
        for log_time, msg in outputs[topic]:
            stamps.append(stamp_of(msg))
            assert msg.encoding == expected
            assert (msg.width, msg.height) == (w, h)
            assert msg.header.frame_id == 'rgb_optical_frame'
            assert log_time == max(logs[stamp_of(msg)])  # the later message of its pair
        assert stamps == visible_stamps  # every pair, in order, stamp copied exactly
    for _, info in outputs['/fused/camera_info']:
        assert (info.width, info.height) == (w, h)
        assert info.k[0] > 0 and info.k[2] == pytest.approx((w - 1) / 2)
    # the warm targets as vision_msgs/Detection2DArray: every pair, its stamp, tracked ids
    assert out_types['/semantic/detections'] == 'vision_msgs/msg/Detection2DArray'
    detections = [msg for _, msg in outputs['/semantic/detections']]
    assert [stamp_of(msg) for msg in detections] == visible_stamps
    previous = {}
    for msg, (_, targets) in zip(detections, outputs['/semantic/targets']):
        assert msg.header.frame_id == 'rgb_optical_frame'
        target_map = np.frombuffer(bytes(targets.data), np.uint8).reshape(h, w)
        boxes = {}
        for d in msg.detections:
            c, sx, sy = d.bbox.center.position, d.bbox.size_x, d.bbox.size_y
            x0, y0 = int(c.x - sx / 2), int(c.y - sy / 2)
            assert 0 <= x0 and 0 <= y0 and x0 + sx <= w and y0 + sy <= h
            assert target_map[y0:y0 + int(sy), x0:x0 + int(sx)].max() >= 64  # a warm target
            boxes[d.id] = (x0, y0, x0 + sx, y0 + sy)
        for ident, box in boxes.items():  # a box where one was a frame ago keeps its id
            same = [old for old, was in previous.items() if box_iou(was, box) > 0.6]
            assert same in ([], [ident]), (ident, same)
        previous = boxes
    assert any(msg.detections for msg in detections)

    report = load_report(tmp_path / 'out_bag_report')
    for role in ('thermal', 'rgb'):
        row = report['messages'][role]
        assert row['read'] == row['matched'] == N
        assert row['unmatched'] == row['late'] == row['duplicate'] == row['overflow'] == 0
    assert report['pairs'] == {**report['pairs'], 'matched': N, 'fused': N, 'failed': 0}
    assert report['metrics']['frames_scored'] == N
    assert all(report['metrics']['mean'][k] is not None for k in ('EN', 'SD', 'VIF', 'Qabf'))
    assert report['latency_ms']['total']['n'] == N
    assert report['latency_ms']['total']['p50'] <= report['latency_ms']['total']['p99']
    assert report['throughput']['pairs_per_s'] > 0
    assert (tmp_path / 'out_bag_report' / 'contact_sheet.png').is_file()
    assert 'Pairs matched: **4**' in (tmp_path / 'out_bag_report' / 'report.md').read_text()
    if out_storage == 'sqlite3':
        assert_humble_metadata(out_bag)
        db = sqlite3.connect(str(next(out_bag.glob('*.db3'))))
        for (qos,) in db.execute('SELECT offered_qos_profiles FROM topics'):
            assert isinstance(yaml.safe_load(qos), list)  # Humble's player reads these too
        db.close()
    assert out_types['/fused/image'] == 'sensor_msgs/msg/Image'


def test_default_bag_is_humble_format(tmp_path):
    bag = make_bag(tmp_path, 'in_bag', n=2)
    info = assert_humble_metadata(bag)
    assert info['storage_identifier'] == 'sqlite3'
    assert {t['topic_metadata']['name'] for t in info['topics_with_message_count']} == {
        '/thermal/image_raw', '/thermal/camera_info', '/rgb/image_raw', '/rgb/camera_info'}


def stored_distros(bag: Path) -> set:
    """ros_distro of the metadata copy a storage file keeps (sqlite3 table, MCAP record)."""
    db3 = list(bag.glob('*.db3'))
    if db3:
        db = sqlite3.connect(str(db3[0]))
        try:
            rows = db.execute('SELECT metadata FROM metadata').fetchall()
        finally:
            db.close()
        return {yaml.safe_load(text)['ros_distro'] for (text,) in rows}
    # MCAP: the metadata record holds the same YAML text (serialized_metadata)
    data = next(bag.glob('*.mcap')).read_bytes()
    return {m.decode() for m in re.findall(rb'ros_distro: ([a-z0-9_]+)', data)}


@pytest.mark.parametrize('storage,extra,distro', [
    ('sqlite3', [], 'humble'),                          # version 8 (default): Humble reads it
    ('mcap', ['--version', '9'], 'jazzy'),              # version 9: Jazzy's format
    ('sqlite3', ['--distro', 'kilted'], 'kilted'),      # what the user names
    ('mcap', ['--version', '9', '--distro', 'humble'], 'humble'),
])
def test_make_bag_names_the_ros_distribution(tmp_path, storage, extra, distro):
    bag = make_bag(tmp_path, 'in_bag', '--storage', storage, *extra, n=2)
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['ros_distro'] == distro  # what `ros2 bag info` shows as ROS Distro
    assert stored_distros(bag) == {distro}
    # and the bag still reads back in full
    outputs, _ = read_bag(bag)
    assert len(outputs['/rgb/image_raw']) == 2


def test_make_bag_refuses_a_distro_that_is_not_a_name(tmp_path, capsys):
    ir, vis = tiny_pairs(tmp_path, 1)
    code = cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(tmp_path / 'b'),
                '--distro', 'Jazzy Jalisco'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'distribution' in err[0]
    assert not (tmp_path / 'b').exists()


def test_standalone_mcap_file_and_mono8_output(tmp_path, capsys):
    in_bag = make_bag(tmp_path, 'in_bag', '--storage', 'mcap', n=3)
    mcap_file = next(in_bag.glob('*.mcap'))
    out_bag = tmp_path / 'out'
    code = cli(['replay', str(mcap_file), '--out', str(out_bag), '--no-metrics',
                '--set', 'output.encoding=mono8', '--namespace', '/cam/fusion', '--overlay'])
    assert code == 0
    err = capsys.readouterr().err
    assert 'standalone MCAP file' in err and 'thermal=/thermal/image_raw' in err
    outputs, _ = read_bag(out_bag)
    assert [msg.encoding for _, msg in outputs['/cam/fusion/fused/image']] == ['mono8'] * 3
    assert len(outputs['/cam/fusion/semantic/overlay']) == 3
    report = load_report(tmp_path / 'out_report')
    assert report['metrics'] is None and report['pairs']['fused'] == 3


def test_directory_without_metadata_reads_its_single_storage_file(tmp_path, capsys):
    in_bag = make_bag(tmp_path, 'in_bag', n=2)
    (in_bag / 'metadata.yaml').unlink()  # a recorder that crashed never writes it
    code = cli(['replay', str(in_bag), '--out', str(tmp_path / 'out'), '--no-metrics'])
    assert code == 0
    assert 'no metadata.yaml' in capsys.readouterr().err
    assert load_report(tmp_path / 'out_report')['pairs']['fused'] == 2


def test_make_bag_repeat_jitter_and_seed(tmp_path):
    a = make_bag(tmp_path, 'a', '--repeat', '3', '--seed', '5', '--jitter-ms', '2', n=2)
    b = tmp_path / 'b'
    ir, vis = tmp_path / 'pairs' / 'ir', tmp_path / 'pairs' / 'vis'
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(b), '--quiet',
                '--repeat', '3', '--seed', '5', '--jitter-ms', '2']) == 0
    msgs_a, _ = read_bag(a)
    assert len(msgs_a['/thermal/image_raw']) == 6
    offsets = [(t.header.stamp.nanosec - r.header.stamp.nanosec)
               for (_, t), (_, r) in zip(msgs_a['/thermal/image_raw'], msgs_a['/rgb/image_raw'])]
    assert max(abs(o) for o in offsets) <= 2e6 and len(set(offsets)) > 1
    assert raw_messages(a, '/thermal/image_raw') == raw_messages(b, '/thermal/image_raw')


def test_make_bag_from_dataset_subset(tmp_path):
    from sgdfuse_ros.eval.synthetic_pairs import write_sample
    write_sample(tmp_path / 'data', n=3, size=SIZE)
    out = tmp_path / 'bag'
    assert cli(['make-bag', '--data', str(tmp_path / 'data'), '--subset', 'test', '--out',
                str(out), '--quiet']) == 0
    msgs, _ = read_bag(out)
    assert len(msgs['/rgb/image_raw']) == 3


def test_replay_of_a_mono8_bag_scores_exactly_like_evaluate(tmp_path):
    """Bag path (CDR, sync, decode) and folder path give the same fused images: same metrics."""
    import json
    in_bag = make_bag(tmp_path, 'in_bag', '--thermal-encoding', 'mono8', n=3)
    ir, vis = tmp_path / 'pairs' / 'ir', tmp_path / 'pairs' / 'vis'
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out',
                str(tmp_path / 'eval'), '--quiet']) == 0
    expected = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())['mean']
    assert cli(['replay', str(in_bag), '--out', str(tmp_path / 'out'), '--quiet']) == 0
    got = load_report(tmp_path / 'out_report')['metrics']['mean']
    for name in ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM'):
        assert got[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


def test_compressed_output_writes_the_node_s_compressed_topics(tmp_path):
    """``--compressed-output``: image_transport's twins under the node's names (issue 24)."""
    in_bag = make_bag(tmp_path, 'in_bag', n=2)
    out_bag = tmp_path / 'out'
    assert cli(['replay', str(in_bag), '--out', str(out_bag), '--no-metrics', '--quiet',
                '--compressed-output', '--overlay', '--set', 'first_stage.type=laplacian',
                '--set', 'refiner.steps=0']) == 0
    outputs, types = read_bag(out_bag)
    expected = {'/fused/image/compressed': 'bgr8; jpeg compressed bgr8',
                '/semantic/labels/compressed': 'mono16; png compressed ',
                '/semantic/targets/compressed': 'mono8; png compressed ',
                '/semantic/overlay/compressed': 'bgr8; jpeg compressed bgr8'}
    for topic, label in expected.items():
        assert types[topic] == 'sensor_msgs/msg/CompressedImage', topic
        assert [msg.format for _, msg in outputs[topic]] == [label] * 2, topic
    for (_, raw), (_, packed) in zip(outputs['/semantic/targets'],
                                     outputs['/semantic/targets/compressed']):
        assert packed.header.stamp == raw.header.stamp
        mask = cv2.imdecode(np.asarray(packed.data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(mask, np.asarray(raw.data, np.uint8).reshape(raw.height, -1))
    plain = tmp_path / 'plain'
    assert cli(['replay', str(in_bag), '--out', str(plain), '--no-metrics', '--quiet',
                '--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']) == 0
    assert not any(topic.endswith('/compressed') for topic in read_bag(plain)[1])
