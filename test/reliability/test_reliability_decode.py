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
Issue #19, classes 4, 5 and 7: encoded images, memory bounds and the messages that name causes.

4. Memory is bounded by what the input may be, checked before decoding, on every path: every
   accepted format's size comes from its header (JPEG markers scanned as libjpeg scans them,
   stray bytes included; TIFF either byte order, tiles; BMP; PNG; PNM), other formats are
   refused, the fused image is bounded like the inputs. The bomb cases assert that
   ``cv2.imdecode`` is never called, and one runs under a 1.5 GiB address-space limit.
5. What is fused is what is scored: one decode, as stored, for both cameras and every command
   (no EXIF rotation for one camera and not the other, no second reading for scoring).
7. Messages name the real cause: every frame of a camera rejected, 1x1 and Hx1 frames, a float
   TIFF, libjpeg's warnings, ``--device cuda`` without a GPU, a homography that misses the
   frame, an empty or escaping ``metadata.yaml``.
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
import struct
import subprocess
import sys

from bag_support import camera_frames, write_custom_bag
import cv2
import numpy as np
import pytest

from sgdfuse_ros import image_decode
from sgdfuse_ros import messages as m
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import ConfigError, error_line, InputError
from sgdfuse_ros.eval.datasets import load_pair, Pair
from sgdfuse_ros.parameters import defaults
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from test_reliability_support import (balanced, EchoPipeline, make_core, one_line, scene,
                                      send_pair)

ROOT = Path(__file__).resolve().parents[2]
CLASSICAL = {'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}
CLASSICAL_ARGS = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']
RNG = np.random.default_rng(19)


@pytest.fixture
def no_decode(monkeypatch):
    """Make any cv2.imdecode call fail the test: the refusal must come before decoding."""
    def refuse(*_args, **_kwargs):
        raise AssertionError('cv2.imdecode was called on an image that should have been refused')
    monkeypatch.setattr(cv2, 'imdecode', refuse)


def encoded(ext, image, *params):
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return bytearray(buf.tobytes())


# --- crafted headers: small files that claim a huge image ---------------------------------------

def jpeg_claiming(width, height, stray=b'', progressive=False, gray=False):
    image = RNG.integers(0, 255, (16, 16) if gray else (16, 16, 3), dtype=np.uint8)
    data = encoded('.jpg', image, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive))
    sof = data.find(b'\xff\xc2' if progressive else b'\xff\xc0')
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data[:sof] + stray + data[sof:])


def png_claiming(width, height):
    data = encoded('.png', np.zeros((8, 8), np.uint8))
    data[16:24] = struct.pack('>II', width, height)
    return bytes(data)


def tiff_claiming(width, height, order='<', tiles=None, short=False):
    """Build a classic TIFF header with one directory (strips or tiles): no pixels needed."""
    magic = b'II*\x00' if order == '<' else b'MM\x00*'
    entries = [(256, width), (257, height)]
    if tiles:
        entries += [(322, tiles[0]), (323, tiles[1])]
    out = magic + struct.pack(order + 'I', 8) + struct.pack(order + 'H', len(entries))
    for tag, value in entries:
        if short:
            field = struct.pack(order + 'H', value) + b'\x00\x00'
            out += struct.pack(order + 'HHI', tag, 3, 1) + field
        else:
            out += struct.pack(order + 'HHII', tag, 4, 1, value)
    return out + struct.pack(order + 'I', 0) + b'\x00' * 64


def bmp_claiming(width, height, core=False):
    if core:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        core_header = struct.pack('<IHHHH', 12, width, height, 1, 24)
        return b'BM' + struct.pack('<IHHI', 0, 0, 0, 26) + core_header + b'\x00' * 64
    data = encoded('.bmp', np.zeros((4, 4, 3), np.uint8))
    data[18:26] = struct.pack('<ii', width, height)
    return bytes(data)


BOMBS = {
    # name: (bytes, 'WxH' the refusal must name)
    'JPEG 30000x30000 (a 3 kB message)': (jpeg_claiming(30000, 30000), '30000x30000'),
    'JPEG with a stray byte before its SOF': (jpeg_claiming(30000, 30000, b'\x00'),
                                              '30000x30000'),
    'JPEG with garbage and fill bytes before its SOF': (
        jpeg_claiming(20000, 9000, b'\x12\x34\xff\xff\xff'), '20000x9000'),
    'progressive JPEG': (jpeg_claiming(30000, 30000, progressive=True), '30000x30000'),
    'gray JPEG 65535x65535': (jpeg_claiming(65535, 65535, gray=True), '65535x65535'),
    'PNG 100000x100000': (png_claiming(100000, 100000), '100000x100000'),
    'TIFF little-endian LONG': (tiff_claiming(20000, 20000), '20000x20000'),
    'TIFF big-endian SHORT': (tiff_claiming(30000, 30000, '>', short=True), '30000x30000'),
    'TIFF big-endian LONG': (tiff_claiming(50000, 50000, '>'), '50000x50000'),
    'TIFF of 16x16 with huge tiles': (tiff_claiming(16, 16, tiles=(60000, 60000)), 'tiles'),
    'BMP 30000x30000': (bmp_claiming(30000, 30000), '30000x30000'),
    'BMP top-down (negative height)': (bmp_claiming(30000, -30000), '30000x30000'),
    'BMP core header': (bmp_claiming(60000, 60000, core=True), '60000x60000'),
    'PGM with a comment': (b'P5\n# a comment\n 30000\n30000 255\n' + b'\x00' * 64,
                           '30000x30000'),
}

REFUSED_FORMATS = {
    'WebP': bytes(encoded('.webp', np.zeros((8, 8, 3), np.uint8))),
    'GIF': b'GIF89a' + struct.pack('<HH', 30000, 30000) + b'\x00' * 32,
    'JPEG 2000': b'\x00\x00\x00\x0cjP  \r\n\x87\n' + b'\x00' * 32,
    'BigTIFF': b'II+\x00\x08\x00\x00\x00' + b'\x00' * 32,
    'AVIF': b'\x00\x00\x00\x1cftypavif' + b'\x00' * 32,
    'Radiance HDR': b'#?RADIANCE\n' + b'\x00' * 32,
    'PFM': b'PF\n30000 30000\n-1.0\n' + b'\x00' * 32,
    'PAM': b'P7\nWIDTH 30000\n' + b'\x00' * 32,
    'Sun raster': b'\x59\xa6\x6a\x95' + b'\x00' * 32,
    'not an image': b'this is not an image at all',
    'empty': b'',
    'JPEG cut before its SOF': jpeg_claiming(30000, 30000)[:20],
    'JPEG whose scan comes before any SOF': b'\xff\xd8\xff\xda\x00\x04\x00\x00' + b'\x00' * 32,
}


@pytest.mark.parametrize('name', sorted(BOMBS))
def test_a_huge_image_is_refused_from_its_header_before_decoding(name, no_decode):
    data, size = BOMBS[name]
    with pytest.raises(image_decode.SizeRefused) as err:
        image_decode.decode_image(data, 4_194_304, 'test')
    assert size in str(err.value) and 'before decoding' in str(err.value)
    one_line(str(err.value))


@pytest.mark.parametrize('name', sorted(REFUSED_FORMATS))
def test_a_format_whose_size_is_not_read_is_refused_in_one_line(name, no_decode):
    with pytest.raises(InputError) as err:
        image_decode.decode_image(REFUSED_FORMATS[name], 4_194_304, 'test')
    one_line(str(err.value))
    assert len(str(err.value)) < 300


def _accepted_images():
    out = []
    for shape, dtype in (((37, 53), np.uint8), ((37, 53, 3), np.uint8), ((37, 53), np.uint16),
                         ((37, 53, 4), np.uint8), ((1, 1), np.uint8), ((9, 1), np.uint8),
                         ((1, 9, 3), np.uint8)):
        image = RNG.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
        for ext in ('.png', '.jpg', '.tiff', '.bmp', '.pgm', '.ppm'):
            if ext == '.pgm' and len(shape) == 3 or ext == '.ppm' and shape[2:] != (3,):
                continue
            try:  # what this OpenCV can write (4.x raises where 5 returns False)
                ok, buf = cv2.imencode(ext, image)
            except cv2.error:
                continue
            if ok:
                out.append((f'{ext[1:]} {shape} {dtype.__name__}', buf.tobytes()))
    return out


def test_every_accepted_format_is_sized_as_opencv_decodes_it():
    cases = _accepted_images()
    assert len(cases) >= 30
    for name, data in cases:
        header = image_decode.read_header(data)
        reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert (header.height, header.width) == reference.shape[:2], name
        ours = image_decode.decode_image(data, 10_000, name)
        assert np.array_equal(ours, reference), name


def test_the_jpeg_bomb_stays_small_under_a_memory_limit(tmp_path):
    """
    Refuse the 30000x30000 JPEG in a process limited to 1.5 GiB of address space.

    Decoded, it would need 2.7 GB; the same process decodes a normal JPEG. No torch, no
    pipeline involved.
    """
    bomb = tmp_path / 'bomb.jpg'
    bomb.write_bytes(jpeg_claiming(30000, 30000))
    good = tmp_path / 'good.jpg'
    good.write_bytes(encoded('.jpg', RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8)))
    code = (
        'import resource, sys\n'
        'limit = 1536 << 20\n'
        'resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n'
        'from sgdfuse_ros import image_decode\n'
        'from sgdfuse_ros.errors import InputError\n'
        'print(image_decode.decode_image(open(sys.argv[2], "rb").read()).shape)\n'
        'try:\n'
        '    image_decode.decode_image(open(sys.argv[1], "rb").read())\n'
        'except InputError as err:\n'
        '    print("refused:", err)\n'
        'peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]\n'
        'print("peak_kib", peak[0].split()[1])\n')  # this process's own peak (not the parent's)
    done = subprocess.run([sys.executable, '-c', code, str(bomb), str(good)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={'PYTHONPATH': str(ROOT), 'PATH': '/usr/bin:/bin'})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == '(48, 64, 3)'
    assert lines[1].startswith('refused: JPEG header says 30000x30000 pixels')
    assert int(lines[2].split()[1]) < 400 * 1024  # KiB: nothing near the 2.7 GB was touched


def test_the_node_rejects_a_compressed_bomb_before_decoding_and_keeps_fusing(no_decode):
    """Any process on the DDS domain can send this ~1.5 kB message: 'size', never decoded."""
    thermal, visible, _ = scene()
    core, t = make_core({'input.compressed': True, 'warn.period_s': 60.0},
                        factory=EchoPipeline)
    for i in range(3):
        bomb = m.msg_type(m.COMPRESSED)(header=m.make_header(1.0 + i, 'th'),
                                        format='mono8; jpeg compressed mono8',
                                        data=np.frombuffer(BOMBS['JPEG 30000x30000 (a 3 kB '
                                                                 'message)'][0], np.uint8))
        t.publish('thermal/image_raw/compressed', bomb)
    stats = balanced(core)
    assert stats['inputs']['thermal']['rejected']['size'] == 3
    core.shutdown()
    core, t = make_core(factory=EchoPipeline)  # the raw topics still fuse
    send_pair(t, 2.0, thermal, visible)
    assert core.process_pending()
    balanced(core)
    core.shutdown()


def _compressed_bomb_bag(tmp_path, n=3):
    bomb = BOMBS['JPEG with a stray byte before its SOF'][0]
    frames = [f for f in camera_frames(n) if f[0] == '/rgb/image_raw']
    for i, (_, log_ns, msg) in enumerate(list(frames)):
        stamp = msg.header.stamp
        frames.append(('/thermal/image_raw/compressed', log_ns + 1000, m.msg_type(m.COMPRESSED)(
            header=m.make_header(stamp, 'thermal'), format='mono8; jpeg compressed mono8',
            data=np.frombuffer(bomb, np.uint8))))
    frames.sort(key=lambda f: f[1])
    return write_custom_bag(tmp_path / 'bomb_bag', frames)


def test_replay_of_compressed_bombs_names_the_real_cause(tmp_path, capsys, no_decode):
    bag = _compressed_bomb_bag(tmp_path)
    code = cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--quiet', '--no-metrics',
                '--thermal-topic', '/thermal/image_raw/compressed', '--rgb-topic',
                '/rgb/image_raw', *CLASSICAL_ARGS])
    assert code == 2
    line = one_line(capsys.readouterr().err.strip().splitlines()[-1])
    assert 'all 3 thermal frames were rejected (size: 3)' in line, line
    assert 'JPEG header says 30000x30000' in line and 'sync.slop' not in line
    report = json.loads((tmp_path / 'out_report' / 'report.json').read_text())
    assert report['messages']['thermal']['rejected'] == {'size': 3}


def test_evaluate_refuses_a_tiff_bomb_from_its_header(tmp_path, no_decode):
    ir, vis = tmp_path / 'ir', tmp_path / 'vis'
    ir.mkdir()
    vis.mkdir()
    (ir / 'a.tif').write_bytes(tiff_claiming(20000, 20000))
    (vis / 'a.png').write_bytes(png_claiming(4000, 4000))  # 16 MP: beyond the default limit
    (ir / 'b.tif').write_bytes(tiff_claiming(20000, 20000, '>', short=True))
    (vis / 'b.png').write_bytes(png_claiming(64, 48))
    out = tmp_path / 'o'
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *CLASSICAL_ARGS]) == 2
    failures = json.loads((out / 'metrics.json').read_text())['failures']
    assert set(failures) == {'a', 'b'}
    for reason in failures.values():
        assert 'TIFF header says 20000x20000 pixels' in reason or \
            'TIFF header says 30000x30000' in reason
        assert 'from its header' in reason


def test_a_4000x4000_pair_is_refused_at_the_default_limit(no_decode):
    """The default limit fits a 4 GB computer (docs/reliability.md): 16 MP frames are refused."""
    limit = defaults()['limits.max_input_pixels']
    assert limit == 2048 * 2048
    with pytest.raises(image_decode.SizeRefused, match='4000x4000'):
        image_decode.decode_image(png_claiming(4000, 4000))


def test_a_file_larger_than_any_allowed_image_is_not_read(tmp_path, monkeypatch):
    big = tmp_path / 'big.png'
    with open(big, 'wb') as f:  # sparse: 40 MiB on paper, nothing on disk
        f.write(png_claiming(8, 8))
        f.truncate(40 << 20)
    monkeypatch.setattr(Path, 'read_bytes', lambda self: pytest.fail('the file was read'))
    with pytest.raises(InputError, match='more than an image of'):
        image_decode.read_file_bytes(big, max_pixels=100_000)


def test_the_fused_image_is_bounded_like_the_inputs(tmp_path):
    with pytest.raises(ConfigError, match='8192x8192'):
        load_config(overrides={'output.width': 8192, 'output.height': 8192})
    # one side set: the bound depends on the visible frame, so it is checked per frame
    config = load_config(overrides=dict(CLASSICAL, **{'output.width': 8192,
                                                      'limits.max_input_pixels': 100_000}))
    thermal, visible, _ = scene()
    with FusionPipeline(config) as pipeline:
        with pytest.raises(InputError, match='more than limits.max_input_pixels') as err:
            pipeline.process(thermal, visible, 'mono16', 'bgr8')
        one_line(str(err.value))
    # the node refuses the change at runtime as it refuses any out-of-range value
    core, _ = make_core(factory=EchoPipeline)
    before = dict(core.config)
    with pytest.raises(ConfigError, match='8192x8192') as err:
        core.set_parameters({'output.width': 8192, 'output.height': 8192})
    one_line(str(err.value))
    assert core.config == before
    core.shutdown()


# --- class 5: one decode for both cameras, fused and scored ------------------------------------

def _exif_rotated_jpeg(image, orientation=6):
    """Build a JPEG whose EXIF says 'rotate 90 degrees' (the camera was held sideways)."""
    data = bytes(encoded('.jpg', image, cv2.IMWRITE_JPEG_QUALITY, 95))
    tiff = (b'MM\x00\x2a\x00\x00\x00\x08\x00\x01' + b'\x01\x12\x00\x03\x00\x00\x00\x01'
            + struct.pack('>H', orientation) + b'\x00\x00' + b'\x00\x00\x00\x00')
    exif = b'Exif\x00\x00' + tiff
    return data[:2] + b'\xff\xe1' + struct.pack('>H', len(exif) + 2) + exif + data[2:]


def _exif_rotated_png(image, orientation=6):
    """Build a PNG with an eXIf chunk saying 'rotate 90 degrees' (OpenCV 5 honours it too)."""
    import zlib
    data = bytes(encoded('.png', image))
    exif = (b'MM\x00\x2a\x00\x00\x00\x08\x00\x01' + b'\x01\x12\x00\x03\x00\x00\x00\x01'
            + struct.pack('>H', orientation) + b'\x00\x00' + b'\x00\x00\x00\x00')
    chunk = (struct.pack('>I', len(exif)) + b'eXIf' + exif
             + struct.pack('>I', zlib.crc32(b'eXIf' + exif) & 0xffffffff))
    at = data.find(b'IDAT') - 4
    return data[:at] + chunk + data[at:]


@pytest.mark.parametrize('kind', ['JPEG with EXIF', 'PNG with eXIf'])
def test_exif_orientation_cannot_make_one_camera_differ(tmp_path, kind):
    thermal, visible, _ = scene(size=(64, 48))
    ir, vis = tmp_path / 'ir', tmp_path / 'vis'
    ir.mkdir()
    vis.mkdir()
    cv2.imwrite(str(ir / 'a.png'), (thermal >> 8).astype(np.uint8))
    name = 'a.jpg' if kind == 'JPEG with EXIF' else 'a.png'
    (vis / name).write_bytes(_exif_rotated_jpeg(visible) if kind == 'JPEG with EXIF'
                             else _exif_rotated_png(visible))
    rotated = cv2.imdecode(np.frombuffer((vis / name).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert rotated.shape[:2] == (64, 48)  # what the old visible reading (IMREAD_COLOR) fused
    t, v, t_colour, v_colour = load_pair(Pair('a', ir / 'a.png', vis / name))
    assert t.shape == v.shape[:2] == t_colour.shape[:2] == v_colour.shape[:2] == (48, 64)
    out = tmp_path / 'o'
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *CLASSICAL_ARGS]) == 0
    report = json.loads((out / 'metrics.json').read_text())
    assert report['fused'] == 1 and report['failed'] == 0
    # scored as fused: sgdfuse metrics reads the same files the same way
    from sgdfuse_ros.eval.metrics import fusion_metrics, read_gray
    again = fusion_metrics(read_gray(out / 'fused' / 'a.png'), read_gray(ir / 'a.png'),
                           read_gray(vis / name))
    for name, value in again.items():
        assert report['per_image']['a'][name] == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize('kind', ['16-bit gray PNG', '16-bit colour PNG', '16-bit TIFF',
                                  'BGRA PNG', 'gray JPEG', 'palette-free gray BMP'])
def test_the_scored_view_is_the_reference_colour_reading(kind):
    """as_reference_colour(decode once) == cv2 IMREAD_COLOR without rotation, file by file."""
    images = {
        '16-bit gray PNG': ('.png', RNG.integers(0, 65535, (20, 30)).astype(np.uint16)),
        '16-bit colour PNG': ('.png', RNG.integers(0, 65535, (20, 30, 3)).astype(np.uint16)),
        '16-bit TIFF': ('.tiff', RNG.integers(0, 65535, (20, 30)).astype(np.uint16)),
        'BGRA PNG': ('.png', RNG.integers(0, 255, (20, 30, 4)).astype(np.uint8)),
        'gray JPEG': ('.jpg', RNG.integers(0, 255, (20, 30)).astype(np.uint8)),
        'palette-free gray BMP': ('.bmp', RNG.integers(0, 255, (20, 30)).astype(np.uint8)),
    }
    ext, image = images[kind]
    data = bytes(encoded(ext, image))
    reference = cv2.imdecode(np.frombuffer(data, np.uint8),
                             cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    ours = image_decode.as_reference_colour(image_decode.decode_image(data))
    assert np.array_equal(ours, reference)


def test_every_image_decode_in_the_package_goes_through_one_function():
    """No cv2.imread / cv2.imdecode anywhere in sgdfuse_ros except image_decode.py."""
    found = []
    for path in sorted((ROOT / 'sgdfuse_ros').rglob('*.py')):
        if path.name == 'image_decode.py' and path.parent.name == 'sgdfuse_ros':
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ('imread', 'imdecode',
                                                                 'imreadmulti'):
                found.append(f'{path.relative_to(ROOT)}:{node.lineno}')
    assert found == []


def test_a_compressed_message_and_a_file_decode_alike():
    """The node (CompressedImage), and evaluate (file) give the same thermal array."""
    counts = (RNG.integers(0, 65535, (24, 32))).astype(np.uint16)
    data = bytes(encoded('.png', counts))
    msg = m.msg_type(m.COMPRESSED)(header=m.make_header(1.0, 't'), format='mono16; png',
                                   data=np.frombuffer(data, np.uint8))
    image, encoding = m.image_from_msg(msg)
    assert encoding == 'mono16' and np.array_equal(image, counts)
    assert np.array_equal(image_decode.as_thermal(image_decode.decode_image(data)), counts)


# --- class 7: messages name the real cause ----------------------------------------------------

def _bad_step_thermal_bag(tmp_path, n=6):
    frames = []
    for topic, log_ns, msg in camera_frames(n):
        if topic == '/thermal/image_raw':
            msg = m.msg_type(m.IMAGE)(header=msg.header, height=msg.height, width=msg.width,
                                      encoding=msg.encoding, is_bigendian=0, step=msg.step - 2,
                                      data=msg.data)
        frames.append((topic, log_ns, msg))
    return write_custom_bag(tmp_path / 'bad_step', frames)


def test_replay_says_every_thermal_frame_was_rejected_not_sync(tmp_path, capsys):
    bag = _bad_step_thermal_bag(tmp_path)
    assert cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--quiet', '--no-metrics',
                *CLASSICAL_ARGS]) == 2
    line = one_line(capsys.readouterr().err.strip().splitlines()[-1])
    assert 'all 6 thermal frames were rejected (decode: 6)' in line, line
    assert 'sync.slop' not in line


def test_adapt_reading_says_every_thermal_frame_was_rejected(tmp_path):
    from sgdfuse_ros.bag.reader import choose_topics, open_bag
    from sgdfuse_ros.training.bag_data import read_bag_frames
    bag = _bad_step_thermal_bag(tmp_path)
    with open_bag(bag) as opened:
        topics = choose_topics(opened, None, None)
        with pytest.raises(InputError) as err:
            read_bag_frames(opened, topics, load_config(overrides=CLASSICAL), 10, 1)
    text = one_line(str(err.value))
    assert 'all 6 thermal frames were rejected (decode: 6)' in text and 'sync.slop' not in text


@pytest.mark.parametrize('config', ['default', 'classical'])
def test_1x1_and_hx1_frames_fuse_or_fail_in_one_line(config):
    overrides = {} if config == 'default' else CLASSICAL
    with FusionPipeline(load_config(overrides=overrides)) as pipeline:
        for h in (1, 2, 3, 4, 5, 7, 8, 16, 33, 100):
            for shape in ((h, 1), (1, h), (h, 2)):
                thermal = RNG.integers(0, 16000, shape).astype(np.uint16)
                visible = RNG.integers(0, 255, shape + (3,), dtype=np.uint8)
                result = pipeline.process(thermal, visible, 'mono16', 'bgr8')
                assert result.fused_bgr.shape[:2] == shape


def test_an_opencv_error_becomes_one_short_line():
    try:
        cv2.resize(np.zeros((4, 4), np.uint8), (0, 0))
    except cv2.error as err:
        line = error_line(err, 200)
    assert line.startswith('error: OpenCV resize: ') and '\n' not in line and '/io/' not in line


def test_a_float32_tiff_thermal_says_what_it_is(tmp_path):
    ir, vis = tmp_path / 'ir', tmp_path / 'vis'
    ir.mkdir()
    vis.mkdir()
    cv2.imwrite(str(ir / 'a.tiff'), RNG.random((48, 64)).astype(np.float32) * 300)
    cv2.imwrite(str(vis / 'a.png'), RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = tmp_path / 'o'
    assert cli(['evaluate', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *CLASSICAL_ARGS]) == 2
    reason = json.loads((out / 'metrics.json').read_text())['failures']['a']
    assert 'float32 TIFF' in one_line(reason) and 'not supported' in reason
    assert '32FC1' in reason  # what a float thermal camera can do instead


def test_libjpeg_warnings_are_counted_not_printed(capfd, caplog):
    image = RNG.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    data = bytes(encoded('.jpg', image))
    sof = data.find(b'\xff\xc0')
    corrupt = data[:sof] + b'\x00\x00' + data[sof:]  # "2 extraneous bytes before marker"
    before = image_decode.decoder_warnings().get('Corrupt JPEG data', 0)
    with caplog.at_level(logging.WARNING, logger='sgdfuse_ros.image_decode'):
        decoded = image_decode.decode_image(corrupt, what='test image')
    assert decoded.shape == (32, 48, 3)
    assert 'Corrupt JPEG data' not in capfd.readouterr().err  # not straight to the terminal
    assert image_decode.decoder_warnings()['Corrupt JPEG data'] == before + 1
    logged = [r.getMessage() for r in caplog.records if 'image library warned' in r.getMessage()]
    assert len(logged) <= 1 and all('\n' not in text for text in logged)


def test_device_cuda_without_a_gpu_warns_or_refuses_as_the_node_does(tmp_path, capsys, caplog):
    from sgdfuse_ros.hardware import cuda_available
    if cuda_available():
        pytest.skip('this machine has a GPU')
    bag = _bad_step_thermal_bag(tmp_path)
    # device_fallback: false -> refused before any work, in one line
    assert cli(['adapt', str(bag), '--out', str(tmp_path / 'a'), '--device', 'cuda', '--quiet',
                '--set', 'device_fallback=false']) == 2
    err = capsys.readouterr().err.strip()
    assert 'no CUDA device is usable' in one_line(err)
    assert not (tmp_path / 'a' / 'adapt_work').exists()
    # the default (device_fallback: true): one warning, then the work (here: the bag's refusal)
    with caplog.at_level(logging.WARNING):
        assert cli(['adapt', str(bag), '--out', str(tmp_path / 'b'), '--device', 'cuda',
                    '--quiet']) == 2
    warned = [r.getMessage() for r in caplog.records if 'CUDA' in r.getMessage()]
    assert len(warned) == 1 and 'falling back to CPU' in warned[0]


def test_a_homography_that_misses_the_frame_is_refused_in_one_line():
    thermal, visible, _ = scene()
    far = [1, 0, 5000, 0, 1, 5000, 0, 0, 1]  # every thermal pixel lands 5000 px away
    with FusionPipeline(load_config(overrides=dict(CLASSICAL, **{
            'registration.homography': far}))) as pipeline:
        with pytest.raises(InputError, match='entirely outside') as err:
            pipeline.process(thermal, visible, 'mono16', 'bgr8')
    one_line(str(err.value))


def test_an_empty_metadata_yaml_is_one_line(tmp_path):
    from sgdfuse_ros.bag.reader import open_bag
    bag = _bad_step_thermal_bag(tmp_path)
    (bag / 'metadata.yaml').write_text('')
    with pytest.raises(InputError, match='is empty') as err:
        open_bag(bag)
    assert 'TypeError' not in one_line(str(err.value))


@pytest.mark.parametrize('name', ['/etc/passwd', '../elsewhere/bad_step.db3',
                                  'sub/../../x.db3'])
def test_metadata_naming_a_file_outside_the_bag_is_refused(tmp_path, name):
    import yaml
    from sgdfuse_ros.bag.reader import open_bag
    bag = _bad_step_thermal_bag(tmp_path)
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())
    meta['rosbag2_bagfile_information']['relative_file_paths'] = [name]
    (bag / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    with pytest.raises(InputError, match='outside the bag folder') as err:
        open_bag(bag)
    one_line(str(err.value))


def test_sgdfuse_metrics_refuses_images_beyond_max_pixels_from_their_headers(tmp_path, capsys):
    for folder in ('f', 'ir', 'vis'):
        (tmp_path / folder).mkdir()
        for name in ('a', 'b'):
            cv2.imwrite(str(tmp_path / folder / f'{name}.png'),
                        RNG.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    (tmp_path / 'f' / 'b.png').write_bytes(png_claiming(30000, 30000))
    out = tmp_path / 'o.json'
    assert cli(['metrics', str(tmp_path / 'f'), '--ir', str(tmp_path / 'ir'), '--vis',
                str(tmp_path / 'vis'), '--max-pixels', '1000', '--out', str(out)]) == 0
    failures = json.loads(out.read_text())['failures']
    assert list(failures) == ['f/b'] and '30000x30000' in failures['f/b']
