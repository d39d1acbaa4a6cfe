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

"""Bad bags and bad frames: one-line errors (exit 2) or a report that says what happened."""

from __future__ import annotations

import os

from bag_support import (camera_frames, load_report, make_bag, read_bag, write_custom_bag)
import numpy as np
import pytest

from sgdfuse_ros import messages as m
from sgdfuse_ros.cli import main as cli


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    last = err.splitlines()[-1]
    assert last.startswith('sgdfuse replay: error:') or last.startswith('sgdfuse make-bag: error:')
    for needle in needles:
        assert needle in last, last
    return last


def replay(*args):
    return cli(['replay', *map(str, args), '--quiet', '--no-metrics'])


def test_missing_bag(tmp_path, capsys):
    assert replay(tmp_path / 'nope', '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'bag not found')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('name,content', [
    ('notes.txt', b'hello'),
    ('fake.db3', b'this is not sqlite at all'),
    ('fake.mcap', b'\x00' * 64),
])
def test_not_a_bag_file(tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert replay(path, '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'not a')


def test_directory_that_is_not_a_bag(tmp_path, capsys):
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'a.png').write_bytes(b'x')
    assert replay(tmp_path / 'photos', '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'not a ROS 2 bag')


def test_broken_metadata(tmp_path, capsys):
    bag = make_bag(tmp_path, n=2)
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 8}\n')
    assert replay(bag, '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'cannot open bag')


@pytest.mark.parametrize('storage,needle', [('sqlite3', 'truncated or damaged'),
                                            ('mcap', 'truncated or was never closed')])
def test_truncated_storage(tmp_path, capsys, storage, needle):
    bag = make_bag(tmp_path, 'in_bag', '--storage', storage, n=3)
    data = next(p for p in bag.iterdir() if p.suffix in ('.db3', '.mcap'))
    with data.open('r+b') as handle:
        handle.truncate(os.path.getsize(data) // 2)
    assert replay(bag, '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'cannot open bag', needle)
    assert not (tmp_path / 'out').exists()


def test_bag_with_only_the_rgb_camera(tmp_path, capsys):
    frames = [f for f in camera_frames(3) if f[0] == '/rgb/image_raw']
    bag = write_custom_bag(tmp_path / 'rgb_only', frames)
    assert replay(bag, '--out', tmp_path / 'out') == 2
    line = one_line_error(capsys, 'no thermal image topic', '--thermal-topic', '/rgb/image_raw')
    assert len(line) < 400


def test_bag_with_only_the_thermal_camera(tmp_path, capsys):
    frames = [f for f in camera_frames(3) if f[0] == '/thermal/image_raw']
    bag = write_custom_bag(tmp_path / 'thermal_only', frames)
    assert replay(bag, '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'no RGB image topic', '--rgb-topic')


def test_no_pairs_within_slop_writes_a_report_and_fails(tmp_path, capsys):
    # 1 Hz cameras, thermal 0.4 s after RGB: never within the default 0.02 s slop
    frames = camera_frames(4, thermal_offset_s=0.4, period_s=1.0)
    bag = write_custom_bag(tmp_path / 'apart', frames)
    assert replay(bag, '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'no thermal/RGB pairs within sync.slop=0.02', '0.400 s apart',
                   '--set sync.slop')
    report = load_report(tmp_path / 'out_report')
    assert report['pairs']['matched'] == 0
    for role in ('thermal', 'rgb'):
        row = report['messages'][role]
        assert row['read'] == 4 and row['unmatched'] == 4 and row['matched'] == 0
    assert 'No pairs were matched' in (tmp_path / 'out_report' / 'report.md').read_text()
    outputs, _ = read_bag(tmp_path / 'out')  # an empty but valid bag
    assert outputs['/fused/image'] == []
    # the same bag pairs once the slop allows it
    assert cli(['replay', str(bag), '--out', str(tmp_path / 'out2'), '--quiet', '--no-metrics',
                '--set', 'sync.slop=0.5']) == 0
    assert load_report(tmp_path / 'out2_report')['pairs']['fused'] == 4


def test_existing_output_needs_overwrite(tmp_path, capsys):
    bag = make_bag(tmp_path, n=2)
    out = tmp_path / 'out'
    assert replay(bag, '--out', out) == 0
    capsys.readouterr()
    assert replay(bag, '--out', out) == 2
    one_line_error(capsys, 'already exists', '--overwrite')
    assert replay(bag, '--out', out, '--overwrite') == 0
    (tmp_path / 'precious').mkdir()
    (tmp_path / 'precious' / 'thesis.tex').write_text('x')
    assert replay(bag, '--out', tmp_path / 'precious', '--overwrite') == 2
    one_line_error(capsys, 'does not look like a ROS 2 bag')
    assert (tmp_path / 'precious' / 'thesis.tex').exists()


def test_make_bag_refuses_existing_output_and_bad_arguments(tmp_path, capsys):
    bag = make_bag(tmp_path, n=2)
    ir, vis = tmp_path / 'pairs' / 'ir', tmp_path / 'pairs' / 'vis'
    base = ['make-bag', '--ir', str(ir), '--vis', str(vis), '--quiet']
    assert cli(base + ['--out', str(bag)]) == 2
    one_line_error(capsys, 'already exists')
    assert cli(base + ['--out', str(tmp_path / 'x'), '--jitter-ms', '80']) == 2
    one_line_error(capsys, 'half a frame period')
    assert cli(base + ['--out', str(tmp_path / 'x'), '--rate', '0']) == 2
    one_line_error(capsys, '--rate')
    assert cli(['make-bag', '--ir', str(ir), '--out', str(tmp_path / 'x')]) == 2
    one_line_error(capsys, '--ir and --vis go together')
    assert not (tmp_path / 'x').exists()


def test_bad_config_override_is_one_line(tmp_path, capsys):
    bag = make_bag(tmp_path, n=2)
    assert replay(bag, '--out', tmp_path / 'out', '--set', 'sync.slop=-1') == 2
    one_line_error(capsys, 'sync.slop')
    assert replay(bag, '--out', tmp_path / 'out', '--namespace', '/bad name') == 2
    one_line_error(capsys, 'namespace')


def test_rejected_and_failing_frames_are_counted_and_skipped(tmp_path, capsys):
    frames = camera_frames(7)
    # thermal 1: CDR bytes cut short; thermal 2: a colour image on the thermal topic;
    # thermal 3: step too short for its size -- each rejected on arrival, as the node does,
    # so its RGB partner ends unmatched. thermal 5: another size than its RGB partner -> the
    # pipeline rejects the pair.
    out, thermal_seen = [], 0
    for topic, log_ns, msg in frames:
        if topic == '/thermal/image_raw':
            if thermal_seen == 1:
                msg = (m.serialize(msg)[:40], m.IMAGE)
            elif thermal_seen == 2:
                msg = m.image_msg(np.zeros((48, 64, 3), np.uint8), msg.header, 'bgr8')
            elif thermal_seen == 3:
                msg.step = 7
            elif thermal_seen == 5:
                msg = m.image_msg(np.full((10, 12), 8000, np.uint16), msg.header)
            thermal_seen += 1
        out.append((topic, log_ns, msg))
    bag = write_custom_bag(tmp_path / 'damaged', out)
    assert replay(bag, '--out', tmp_path / 'out') == 0
    report = load_report(tmp_path / 'out_report')
    th, visible = report['messages']['thermal'], report['messages']['rgb']
    assert th['read'] == 7 and th['matched'] == 4
    assert th['rejected'] == {'cdr': 1, 'encoding': 1, 'decode': 1}
    assert visible['read'] == 7 and visible['matched'] == 4 and visible['unmatched'] == 3
    assert report['pairs'] == {**report['pairs'], 'matched': 4, 'fused': 3, 'failed': 1}
    assert report['failures'][0]['kind'] == 'pipeline'
    md = (tmp_path / 'out_report' / 'report.md').read_text()
    assert '1 cdr, 1 encoding, 1 decode' in md and "has encoding 'bgr8'" in md
    outputs, _ = read_bag(tmp_path / 'out')
    assert len(outputs['/fused/image']) == 3


def test_stamps_jumping_back_reset_the_synchroniser_like_the_node(tmp_path):
    # a recording that loops: stamps 100.0..101.5 twice (a jump back of 1.5 s > 1 s); without a
    # reset the second loop would be 'late' (older than the last pair) and lost
    first = camera_frames(4, period_s=0.5)
    again = [(t, log + 3_000_000_000, msg)
             for t, log, msg in camera_frames(4, period_s=0.5, seed=1)]
    bag = write_custom_bag(tmp_path / 'loop', first + again)
    assert replay(bag, '--out', tmp_path / 'out') == 0
    report = load_report(tmp_path / 'out_report')
    assert report['pairs']['fused'] == 8 and report['pairs']['sync_resets'] == 1
    assert report['messages']['thermal']['late'] == 0


def test_every_pair_failing_is_an_error(tmp_path, capsys):
    frames = []
    for topic, log_ns, msg in camera_frames(3):
        if topic == '/thermal/image_raw':
            msg = m.image_msg(np.full((10, 12), 8000, np.uint16), msg.header)
        frames.append((topic, log_ns, msg))
    bag = write_custom_bag(tmp_path / 'sizes', frames)
    assert replay(bag, '--out', tmp_path / 'out') == 2
    one_line_error(capsys, 'all 3 pairs failed')
    assert load_report(tmp_path / 'out_report')['pairs']['failed'] == 3
