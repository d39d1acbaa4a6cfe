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
The replay of damaged recordings.

Every message accounted for, per topic, ``read = matched + unmatched + late + duplicate + overflow
+ rejected``, and ``pairs matched = fused + failed``; a bag that breaks part-way keeps what was
fused before.

The closing evidence (``test_a_deliberately_damaged_bag_is_replayed_with_every_message_accounted``)
makes a bag with ``sgdfuse make-bag`` from the generated sample, then damages it: a thermal image
whose data is shorter than height * step, a thermal message whose CDR bytes are cut, an RGB
image with an unknown encoding, a duplicated RGB message, two thermal messages delivered out of
order, a gap where the thermal camera stops for three frames, a big-endian thermal image, and a
thermal image of another size than its RGB partner.
"""

from __future__ import annotations

import struct

from bag_support import load_report, read_bag, write_custom_bag
import numpy as np
import pytest

from sgdfuse_ros import messages as m
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.eval.synthetic_pairs import write_sample
from sgdfuse_ros.pipeline import stages
from test_reliability_support import one_line

THERMAL, VISIBLE = '/thermal/image_raw', '/rgb/image_raw'
DROPS = ('unmatched', 'late', 'duplicate', 'overflow')


def make_bag(tmp_path, name='clean', n=8, size=(64, 48), *extra):
    ir, vis = write_sample(tmp_path / f'pairs_{name}', n=n, size=size)
    out = tmp_path / name
    assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *extra]) == 0
    return out


def replay(bag, out, *extra):
    return cli(['replay', str(bag), '--out', str(out), '--quiet', '--no-metrics', *extra])


def check_books(report):
    """Every message read is in exactly one bucket; every matched pair fused or failed."""
    for role in ('thermal', 'rgb'):
        row = report['messages'][role]
        assert row['read'] == row['matched'] + sum(row[d] for d in DROPS) + \
            sum(row['rejected'].values()), row
    pairs = report['pairs']
    assert report['messages']['thermal']['matched'] == report['messages']['rgb']['matched'] \
        == pairs['matched'] == pairs['fused'] + pairs['failed']


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    last = one_line(err.splitlines()[-1])
    assert last.startswith('sgdfuse replay: error:'), last
    for needle in needles:
        assert needle in last, last
    return last


# --- the damaged bag -----------------------------------------------------------------------------

def damaged_frames(clean):
    """
    Return the clean bag's camera messages, damaged as the module docstring says.

    Log times put each RGB image 4 ms and each thermal image 10 ms after its own stamp.
    """
    recorded, _ = read_bag(clean)
    thermal = [msg for _, msg in recorded[THERMAL]]
    visible = [msg for _, msg in recorded[VISIBLE]]
    assert len(thermal) == len(visible) == 16
    frames = []

    def at(msg, delay_ms):
        return m.stamp_nanoseconds(msg) + int(delay_ms * 1e6)

    for i, (th, vis) in enumerate(zip(thermal, visible)):
        if i == 6:  # an encoding nobody knows
            vis.encoding = 'yuv422'
        frames.append((VISIBLE, at(vis, 4), vis))
        if i == 9:  # the driver sent it twice
            frames.append((VISIBLE, at(vis, 5), vis))
        if 10 <= i <= 12:  # the thermal camera stops for three frames
            continue
        log_ns = at(th, 10)
        if i == 2:  # payload shorter than height * step
            th.data = th.data[: th.data.size // 2]
        elif i == 5:  # CDR bytes cut short
            th = (m.serialize(th)[:60], m.IMAGE)
        elif i == 3:  # delivered after thermal 4
            log_ns = at(thermal[4], 10) + 1_000_000
        elif i == 4:
            log_ns = at(thermal[3], 10)
        elif i == 14:  # big-endian 16-bit, as some drivers send
            counts, _ = m.image_from_msg(th)
            th = m.msg_type(m.IMAGE)(header=th.header, height=th.height, width=th.width,
                                     encoding='mono16', is_bigendian=1, step=th.step,
                                     data=np.frombuffer(counts.astype('>u2').tobytes(), np.uint8))
        elif i == 15:  # another size than its RGB partner: the pipeline refuses the pair
            th = m.image_msg(np.full((24, 32), 8000, np.uint16), th.header, 'mono16')
        frames.append((THERMAL, log_ns, th))
    frames.sort(key=lambda f: f[1])
    return frames


@pytest.fixture(scope='module')
def damaged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('damaged')
    clean = make_bag(tmp, 'clean', 8, (64, 48), '--rate', '10', '--repeat', '2')
    bag = write_custom_bag(tmp / 'damaged', damaged_frames(clean))
    code = replay(bag, tmp / 'out')
    return {'code': code, 'report': load_report(tmp / 'out_report'),
            'markdown': (tmp / 'out_report' / 'report.md').read_text(),
            'outputs': read_bag(tmp / 'out')[0]}


def test_a_deliberately_damaged_bag_is_replayed_with_every_message_accounted(damaged):
    assert damaged['code'] == 0  # damaged frames are skipped, not fatal
    report = damaged['report']
    check_books(report)
    th, vis = report['messages']['thermal'], report['messages']['rgb']
    assert (th['read'], th['matched'], th['unmatched'], th['late'], th['duplicate'],
            th['overflow'], th['rejected']) == (13, 9, 1, 1, 0, 0, {'decode': 1, 'cdr': 1})
    assert (vis['read'], vis['matched'], vis['unmatched'], vis['late'], vis['duplicate'],
            vis['overflow'], vis['rejected']) == (17, 9, 6, 0, 1, 0, {'encoding': 1})
    assert (report['pairs']['matched'], report['pairs']['fused'], report['pairs']['failed']) \
        == (9, 8, 1)
    assert report['failures'][0]['kind'] == 'pipeline'
    assert 'differ in size' in report['failures'][0]['reason']


def test_the_damaged_bag_report_says_what_happened(damaged):
    md = damaged['markdown']
    assert '| thermal `/thermal/image_raw` | 13 | 9 | 1 | 1 | 0 | 0 | 1 decode, 1 cdr |' in md
    assert '| rgb `/rgb/image_raw` | 17 | 9 | 6 | 0 | 1 | 0 | 1 encoding |' in md
    assert "'yuv422'" in md and 'expected height*step' in md
    assert 'Pairs matched: **9**; fused: **8**; failed: **1**' in md


def test_the_damaged_bag_output_holds_the_fused_pairs_big_endian_included(damaged):
    fused = damaged['outputs']['/fused/image']
    stamps = [round(m.stamp_seconds(msg), 3) for _, msg in fused]
    assert len(fused) == damaged['report']['pairs']['fused'] == 8
    frames = {round(f['stamp_ns'] * 1e-9, 3): f for f in damaged['report']['frames']}
    assert stamps == sorted(frames)
    start = min(stamps)
    indices = [int(round((s - start) * 10)) for s in stamps]
    assert indices == [0, 1, 4, 7, 8, 9, 13, 14]  # frame 14 is the big-endian one


# --- other damage --------------------------------------------------------------------------------

def _chunks(path):
    data = path.read_bytes()
    pos, chunks = 8, []
    while pos < len(data) - 8:
        opcode, length = data[pos], struct.unpack_from('<Q', data, pos + 1)[0]
        if opcode == 0x06:
            chunks.append(pos)
        if opcode == 0x02:
            break
        pos += 9 + length
    return chunks


def test_a_recording_that_breaks_part_way_keeps_what_was_fused(tmp_path, capsys):
    bag = make_bag(tmp_path, 'big', 4, (320, 240), '--storage', 'mcap')
    storage = next(bag.glob('*.mcap'))
    chunks = _chunks(storage)
    assert len(chunks) >= 2, 'the bag needs two MCAP chunks for this test'
    data = bytearray(storage.read_bytes())
    crc = chunks[1] + 9 + 24  # chunk record: opcode, length, start, end, size, then its CRC
    data[crc:crc + 4] = bytes(4) if data[crc:crc + 4] != bytes(4) else b'\x01\x02\x03\x04'
    storage.write_bytes(bytes(data))
    assert replay(bag, tmp_path / 'out') == 2
    line = one_line_error(capsys, 'became unreadable after', 'Chunk checksum mismatch',
                          'pairs fused before the damage are in')
    report = load_report(tmp_path / 'out_report')
    assert report['read_error'] and 'checksum' in report['read_error']
    check_books(report)
    fused = report['pairs']['fused']
    assert 1 <= fused < 4 and f'the {fused} pairs fused' in line
    assert len(read_bag(tmp_path / 'out')[0]['/fused/image']) == fused


def test_an_empty_bag_is_a_one_line_error(tmp_path, capsys):
    from sgdfuse_ros.bag.writer import BagWriter
    with BagWriter(tmp_path / 'declared') as writer:  # topics declared, nothing recorded
        writer.add_topic(THERMAL, m.IMAGE)
        writer.add_topic(VISIBLE, m.IMAGE)
    assert replay(tmp_path / 'declared', tmp_path / 'out') == 2
    one_line_error(capsys, 'no thermal image topic', '0 msgs', '--thermal-topic')
    assert replay(tmp_path / 'declared', tmp_path / 'out2', '--thermal-topic', THERMAL,
                  '--rgb-topic', VISIBLE) == 2
    one_line_error(capsys, 'no thermal/RGB pairs', '0 thermal, 0 RGB messages')
    report = load_report(tmp_path / 'out2_report')
    check_books(report)
    assert report['messages']['thermal']['read'] == report['messages']['rgb']['read'] == 0
    with BagWriter(tmp_path / 'nothing'):
        pass
    assert replay(tmp_path / 'nothing', tmp_path / 'out3') == 2
    one_line_error(capsys, 'no image topics (topics: none)')


def test_a_frame_out_of_memory_in_the_replay_is_a_counted_failure(tmp_path, monkeypatch):
    from sgdfuse_ros.fusion.laplacian import LaplacianStage

    class Starved(LaplacianStage):
        calls = 0

        def __call__(self, *args):
            Starved.calls += 1
            if Starved.calls == 2:
                raise MemoryError('Unable to allocate 1.2 GiB for an array')
            return super().__call__(*args)

    monkeypatch.setitem(stages.FIRST_STAGES, 'laplacian',
                        lambda config, device: Starved(config['first_stage.levels']))
    bag = make_bag(tmp_path, 'clean', 4)
    assert replay(bag, tmp_path / 'out', '--set', 'faults.oom_retry=none',
                  '--set', 'first_stage.type=laplacian') == 0  # the patched stage
    report = load_report(tmp_path / 'out_report')
    check_books(report)
    assert (report['pairs']['fused'], report['pairs']['failed']) == (3, 1)
    assert report['failures'][0]['kind'] == 'out_of_memory'
    assert 'MemoryError' in report['failures'][0]['reason']
    Starved.calls = 0
    # default oom_retry: retried without the refiner
    assert replay(bag, tmp_path / 'out2', '--set', 'first_stage.type=laplacian') == 0
    report = load_report(tmp_path / 'out2_report')
    assert (report['pairs']['fused'], report['pairs']['failed']) == (4, 0)
    assert sum(1 for f in report['frames'] if f['notes']) == 1
