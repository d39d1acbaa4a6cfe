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

"""Finding the camera topics of a recording, reading damaged streams, and streaming."""

from __future__ import annotations

from bag_support import load_report, make_bag, read_bag, write_custom_bag
import numpy as np
import pytest

from sgdfuse_ros import messages as m
from sgdfuse_ros.bag.reader import choose_topics, open_bag
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.errors import InputError


def img(encoding, topic, t=1.0, size=(8, 6)):
    w, h = size
    shapes = {'mono8': (np.uint8, (h, w)), 'mono16': (np.uint16, (h, w)),
              '16UC1': (np.uint16, (h, w)), '32FC1': (np.float32, (h, w)),
              'bgr8': (np.uint8, (h, w, 3)), 'rgb8': (np.uint8, (h, w, 3))}
    dtype, shape = shapes[encoding]
    return (topic, int(t * 1e9), m.image_msg(np.zeros(shape, dtype), m.make_header(t), encoding))


def jpeg(topic, t=1.0, channels=3):
    shape = (6, 8, 3) if channels == 3 else (6, 8)
    return (topic, int(t * 1e9), m.compressed_msg(np.zeros(shape, np.uint8), m.make_header(t)))


def info(topic, t=1.0):
    return (topic, int(t * 1e9), m.camera_info_msg(8, 6, m.make_header(t)))


def topics_of(tmp_path, frames, **given):
    bag_path = tmp_path / 'bag'
    if not bag_path.exists():
        write_custom_bag(bag_path, frames)
    with open_bag(bag_path) as bag:
        chosen = choose_topics(bag, **given)
        return (chosen.thermal.name, chosen.visible.name,
                chosen.visible_info.name if chosen.visible_info else None)


def test_realistic_robot_bag(tmp_path):
    frames = [img('mono16', '/flir_boson/image_raw'), info('/flir_boson/camera_info'),
              img('16UC1', '/camera/depth/image_rect_raw'),       # depth: never thermal
              img('mono8', '/camera/infra1/image_rect_raw'),      # NIR stereo, not thermal
              jpeg('/camera/color/image_raw/compressed'), info('/camera/color/camera_info'),
              img('bgr8', '/fused/image'),                 # our own output: never input
              img('bgr8', '/fusion/fused/image')]          # (as older replays named it too)
    assert topics_of(tmp_path, frames) == ('/flir_boson/image_raw',
                                           '/camera/color/image_raw/compressed',
                                           '/camera/color/camera_info')


def test_compressed_thermal_is_recognised_by_name(tmp_path):
    frames = [jpeg('/lwir/image_raw/compressed', channels=1), img('rgb8', '/cam/image_raw'),
              info('/cam/camera_info'), info('/lwir/camera_info')]
    assert topics_of(tmp_path, frames) == ('/lwir/image_raw/compressed', '/cam/image_raw',
                                           '/cam/camera_info')


def test_single_unnamed_mono_topic_is_taken_as_thermal(tmp_path):
    frames = [img('32FC1', '/camera_a/image'), img('bgr8', '/camera_b/image')]
    assert topics_of(tmp_path, frames) == ('/camera_a/image', '/camera_b/image', None)


def test_ambiguous_bag_names_the_candidates_and_the_option(tmp_path):
    frames = [img('mono16', '/left/image'), img('mono8', '/right/image'), img('bgr8', '/rgb')]
    with pytest.raises(InputError, match='several possible thermal.*--thermal-topic'):
        topics_of(tmp_path, frames)
    assert topics_of(tmp_path, frames, thermal='/right/image')[0] == '/right/image'


def test_given_topics_are_checked(tmp_path):
    frames = [img('mono16', '/thermal/image_raw'), img('bgr8', '/rgb/image_raw'),
              info('/rgb/camera_info')]
    with pytest.raises(InputError, match='no such topic'):
        topics_of(tmp_path, frames, thermal='/thermal/image')
    with pytest.raises(InputError, match='expected sensor_msgs/msg/Image'):
        topics_of(tmp_path, frames, visible='/rgb/camera_info')
    with pytest.raises(InputError, match='the same'):
        topics_of(tmp_path, frames, thermal='/rgb/image_raw', visible='/rgb/image_raw')


def test_a_stream_that_breaks_part_way_keeps_what_was_fused(tmp_path, capsys, monkeypatch):
    bag = make_bag(tmp_path, n=6)
    from rosbags.rosbag2 import Reader
    original = Reader.messages

    def breaking(self, *args, **kwargs):
        for i, item in enumerate(original(self, *args, **kwargs)):
            if i == 10:
                raise RuntimeError('database disk image is malformed')
            yield item
    monkeypatch.setattr(Reader, 'messages', breaking)
    code = cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--quiet', '--no-metrics'])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'became unreadable after 10 messages' in err and 'pairs fused before' in err
    report = load_report(tmp_path / 'out_report')
    assert 'malformed' in report['read_error']
    read = report['messages']['thermal']['read'] + report['messages']['rgb']['read']
    assert 0 < read < 12
    monkeypatch.undo()
    outputs, _ = read_bag(tmp_path / 'out')  # closed properly, readable
    assert len(outputs['/fused/image']) == report['pairs']['fused'] > 0


def test_replay_streams_in_flat_memory(tmp_path):
    """A bag 6x longer must not need more memory to replay (nothing kept per message)."""
    import tracemalloc

    from sgdfuse_ros.eval.synthetic_pairs import write_sample
    ir, vis = write_sample(tmp_path / 'pairs', n=2, size=(320, 240))

    def peak_mib(repeat: int) -> float:
        bag = tmp_path / f'bag{repeat}'
        assert cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(bag),
                    '--quiet', '--repeat', str(repeat)]) == 0
        tracemalloc.start()
        try:
            assert cli(['replay', str(bag), '--out', str(tmp_path / f'out{repeat}'), '--quiet',
                        '--no-metrics']) == 0
            return tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()

    short, long = peak_mib(5), peak_mib(30)  # 10 and 60 pairs of 320x240
    # keeping each pair's input messages (0.37 MiB per pair) would add ~17 MiB (measured)
    assert long - short < 4, (short, long)
    assert load_report(tmp_path / 'out30_report')['pairs']['fused'] == 60


def test_compressed_thermal_png16_and_jpeg_rgb_are_fused(tmp_path):
    rng = np.random.default_rng(3)
    frames = []
    for i in range(3):
        t = 10.0 + 0.1 * i
        counts = rng.integers(7000, 9000, (48, 64)).astype(np.uint16)
        visible = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        frames.append(('/thermal/image_raw/compressed', int(t * 1e9) + 5,
                       m.compressed_msg(counts, m.make_header(t + 0.002), 'png')))
        frames.append(('/rgb/image_raw/compressed', int(t * 1e9) + 9,
                       m.compressed_msg(visible, m.make_header(t, 'rgb'), 'jpeg')))
    bag = write_custom_bag(tmp_path / 'compressed', frames, storage='mcap')
    assert cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--quiet']) == 0
    report = load_report(tmp_path / 'out_report')
    assert report['input']['topics']['thermal']['topic'] == '/thermal/image_raw/compressed'
    assert report['pairs']['fused'] == 3 and report['metrics']['frames_scored'] == 3
    outputs, _ = read_bag(tmp_path / 'out')
    assert [(msg.width, msg.height) for _, msg in outputs['/fused/image']] == [(64, 48)] * 3
