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
``sgdfuse make-bag``: a realistic ROS 2 bag from registered thermal/visible image pairs.

    sgdfuse make-bag --data ~/data/roadscene --subset test --out roadscene_test
    sgdfuse make-bag --ir pairs/ir --vis pairs/vis --out pairs_bag --rgb-format jpeg --storage mcap

What the bag holds, per pair (frame ``i`` of ``--repeat`` passes over the pairs):

- ``/rgb/image_raw`` (``sensor_msgs/Image`` bgr8) or ``/rgb/image_raw/compressed``
  (``CompressedImage`` JPEG) stamped ``t_i = start + i / rate``;
- ``/thermal/image_raw`` stamped ``t_i + u``, ``u`` uniform in ``[-jitter, +jitter]``: the two
  cameras are not hardware-triggered, as on most robots;
- ``/thermal/camera_info`` and ``/rgb/camera_info`` with the image's size and pinhole intrinsics
  for a 50 degree horizontal field of view (``fx = fy = (w / 2) / tan(25 deg)``, principal point
  at the centre, no distortion). The pairs are registered, so both cameras get the same model
  (with ``--unregistered``, each camera's model has its own image size).
- log (receive) times a few milliseconds after the stamps: 10 +- 2 ms for the thermal camera
  (a USB thermal core buffers a frame), 4 +- 1 ms for the visible camera.

Thermal as ``mono16`` (default) mimics the raw output of a 14-bit radiometric core (FLIR Boson /
Lepton): an 8-bit value ``v`` becomes ``7000 + 30 v`` counts plus Gaussian noise of 3 counts,
clipped to ``[0, 16383]``, so the scene spans about 7000..14650 counts and the node's automatic
gain control has real work to do. ``--thermal-encoding mono8`` writes the 8-bit image as is.

A 16-bit thermal source (a 16-bit PNG or TIFF of raw counts) is written as ``mono16`` value
for value, with no synthesis; ``--thermal-encoding mono8`` refuses it, and so is refused a source
of another depth (float, 32-bit), which no camera encoding here holds faithfully.

Pairs of different sizes are fine (a bag may change frame size); stamps and noise come from
``--seed`` so the same command writes the same bag. A pair that cannot be read (truncated,
unreadable, thermal and visible of different sizes without ``--unregistered``) is skipped,
counted and named, and the bag
goes on; SIGINT / SIGTERM stop at a pair boundary with the bag closed (exit 130 / 143), a full
disk keeps the pairs written before it (exit 2).

The metadata names the ROS distribution the bag is for (``ros2 bag info``: "ROS Distro"):
``--distro NAME``, by default the one that reads the version written (8: humble, 9: jazzy).
"""

from __future__ import annotations

import math
from pathlib import Path
import sys

import numpy as np

from .guard import stop_request
from .options import add_pair_choice, pair_choice
from .outputs import check_apart, pair_inputs, ReplacedPath
from .outputs import check_output_dir
from .values import float_range, int_at_least, int_in, seed, STAMP_MAX_S
from .. import messages as m
from ..bag.writer import BagWriter, check_distro, check_replaceable, DISTRO_FOR_VERSION
from ..errors import InputError, SgdfuseError
from ..eval.datasets import choose_pairs, default_data_dir, load_pair, split_used
from ..parameters import defaults
from ..progress import Progress
from ..writing import is_write_failure, write_failure

THERMAL_TOPIC = '/' + m.INPUT_TOPICS['thermal']
THERMAL_INFO_TOPIC = '/' + m.THERMAL_INFO_TOPIC
VISIBLE_TOPIC = '/' + m.INPUT_TOPICS['visible']
VISIBLE_COMPRESSED_TOPIC = VISIBLE_TOPIC + m.COMPRESSED_SUFFIX
VISIBLE_INFO_TOPIC = '/' + m.CAMERA_INFO_TOPIC
THERMAL_FRAME = 'thermal_optical_frame'
VISIBLE_FRAME = 'rgb_optical_frame'

COUNTS_OFFSET = 7000     # raw counts of an 8-bit 0
COUNTS_PER_LEVEL = 30    # raw counts per 8-bit grey level
COUNTS_NOISE = 3.0       # standard deviation of the temporal noise, in counts
COUNTS_MAX = (1 << 14) - 1
HFOV_DEG = 50.0
THERMAL_DELAY_MS = (10.0, 2.0)  # mean, spread of the receive delay
VISIBLE_DELAY_MS = (4.0, 1.0)
DEFAULT_START_S = 1_700_000_000.0
MIN_RATE_HZ = 1e-3


def add_arguments(parser) -> None:
    src = parser.add_argument_group('source pairs (registered; matched by file name)')
    src.add_argument('--ir', metavar='DIR', help='folder of thermal images')
    src.add_argument('--vis', metavar='DIR', help='folder of visible images')
    src.add_argument('--data', metavar='DIR', help='RoadScene-layout folder (ir/, vis/, '
                     'split.json); default: $SGDFUSE_DATA')
    add_pair_choice(src)
    parser.add_argument('--out', required=True, metavar='BAG', help='bag to write')
    parser.add_argument('--rate', type=float_range(MIN_RATE_HZ, 1e6), default=10.0,
                        help=f'frame rate in Hz (default 10; {MIN_RATE_HZ:g} .. 1e6)')
    parser.add_argument('--jitter-ms', type=float_range(0.0, 1e6), default=5.0,
                        help='largest thermal-vs-RGB stamp offset in ms (default 5)')
    parser.add_argument('--thermal-encoding', choices=('mono16', 'mono8'), default='mono16',
                        help='mono16: 14-bit raw counts (default); mono8: the 8-bit image')
    parser.add_argument('--rgb-format', choices=('raw', 'jpeg'), default='raw',
                        dest='visible_format',
                        help='raw: sensor_msgs/Image bgr8 (default); jpeg: CompressedImage')
    parser.add_argument('--jpeg-quality', type=int_in(1, 100), default=90,
                        help='JPEG quality (default 90)')
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3',
                        help='storage plugin (default sqlite3)')
    parser.add_argument('--version', type=int, choices=(8, 9), default=8,
                        help='rosbag2 metadata version (default 8, which Humble reads)')
    parser.add_argument('--distro', metavar='NAME', default=None,
                        help="ROS distribution named in the bag's metadata (ros2 bag info: ROS "
                             'Distro); default the one the version is for: 8 humble, 9 jazzy')
    parser.add_argument('--repeat', type=int_at_least(1), default=1,
                        help='passes over the pairs (default 1)')
    parser.add_argument('--seed', type=seed, default=0,
                        help='seed of jitter and noise (0 .. 2^32-1)')
    parser.add_argument('--start', type=float_range(0.0, STAMP_MAX_S), default=DEFAULT_START_S,
                        help='stamp of the first frame, seconds since the epoch (a ROS 2 stamp '
                             'holds up to 2^31-1 s, January 2038)')
    parser.add_argument('--unregistered', action='store_true',
                        help='the pairs are not registered (two cameras at their own sizes, e.g. '
                        'a rig to try `sgdfuse register` on): thermal and visible images may '
                        'differ in size')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


def raw_counts(gray_u8, rng):
    """8-bit thermal image -> plausible 14-bit radiometric counts (uint16)."""
    counts = COUNTS_OFFSET + COUNTS_PER_LEVEL * gray_u8.astype(np.float32)
    counts += rng.normal(0.0, COUNTS_NOISE, size=gray_u8.shape).astype(np.float32)
    return np.clip(np.rint(counts), 0, COUNTS_MAX).astype(np.uint16)


def intrinsics(width: int, height: int, hfov_deg: float = HFOV_DEG):
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([f, 0.0, (width - 1) / 2.0, 0.0, f, (height - 1) / 2.0, 0.0, 0.0, 1.0])


def source_pairs(args):
    """Return the pairs the options choose (:func:`~sgdfuse_ros.eval.datasets.choose_pairs`)."""
    return choose_pairs(_data(args), args.ir, args.vis, **pair_choice(args))


def _data(args):
    return None if (args.ir or args.vis) else (args.data or default_data_dir())


def check_arguments(args) -> None:
    if not (args.rate > 0 and math.isfinite(args.rate)):
        raise InputError(f'--rate must be a positive number of Hz, got {args.rate}')
    if not (args.jitter_ms >= 0 and math.isfinite(args.jitter_ms)):
        raise InputError(f'--jitter-ms must be >= 0, got {args.jitter_ms}')
    if args.jitter_ms / 1000.0 >= 0.5 / args.rate:
        raise InputError(f'--jitter-ms {args.jitter_ms} is half a frame period or more at '
                         f'{args.rate} Hz: thermal frames would pair with the wrong RGB frame')
    if args.repeat < 1:
        raise InputError(f'--repeat must be >= 1, got {args.repeat}')
    if not 1 <= args.jpeg_quality <= 100:
        raise InputError(f'--jpeg-quality must be in 1..100, got {args.jpeg_quality}')
    if args.start < 0:
        raise InputError('--start must be >= 0')


def check_last_stamp(args, frames: int) -> None:
    """Refuse a last stamp (or receive time) beyond what a ROS 2 stamp holds (int32 s)."""
    last = args.start + max(frames - 1, 0) / args.rate + (args.jitter_ms + 20.0) / 1000.0
    if last > STAMP_MAX_S:
        raise InputError(f'--start {args.start:.0f} with {frames} frames at {args.rate:g} Hz ends '
                         f'at {last:.0f} s, beyond the largest ROS 2 stamp ({STAMP_MAX_S} s, '
                         f'January 2038); lower --start or --repeat')


def thermal_message(thermal, encoding: str, rng, header, name: str):
    """Build the thermal Image of one source frame; refuse what it cannot hold faithfully."""
    if thermal.dtype == np.uint16:
        if encoding != 'mono16':
            raise InputError(f'the thermal source is 16-bit; --thermal-encoding '
                             f'{encoding} would lose its values (use mono16)')
        return m.image_msg(np.ascontiguousarray(thermal), header, 'mono16')  # value for value
    if thermal.dtype != np.uint8:
        raise InputError(f'thermal source of type {thermal.dtype} (8- or 16-bit '
                         f'unsigned images only)')
    if encoding == 'mono16':
        return m.image_msg(raw_counts(thermal, rng), header, 'mono16')
    return m.image_msg(thermal, header, 'mono8')


def main(args) -> int:

    check_arguments(args)
    distro = check_distro(args.distro if args.distro is not None
                          else DISTRO_FOR_VERSION[args.version])
    check_output_dir(args.out, '--out')
    pairs = source_pairs(args)
    split = split_used(_data(args), args.ir, args.vis, args.split, args.subset)
    check_apart(pair_inputs(pairs, split), [('--out', args.out)])
    check_last_stamp(args, len(pairs) * args.repeat)
    check_replaceable(args.out, args.overwrite)
    max_pixels = defaults()['limits.max_input_pixels']
    rng = np.random.default_rng(args.seed)
    period_ns = int(round(1e9 / args.rate))
    start_ns = int(round(args.start * 1e9))
    jitter_ns = args.jitter_ms * 1e6
    visible_topic = VISIBLE_TOPIC if args.visible_format == 'raw' else VISIBLE_COMPRESSED_TOPIC
    total = len(pairs) * args.repeat
    custom = {'sgdfuse_ros.make_bag.pairs': str(len(pairs)),
              'sgdfuse_ros.make_bag.rate_hz': f'{args.rate:g}',
              'sgdfuse_ros.make_bag.jitter_ms': f'{args.jitter_ms:g}',
              'sgdfuse_ros.make_bag.thermal_encoding': args.thermal_encoding,
              'sgdfuse_ros.make_bag.seed': str(args.seed)}

    def delay(spec) -> int:
        mean, spread = spec
        return int(round((mean + rng.uniform(-spread, spread)) * 1e6))

    skipped = {}
    write_error, close_error, frame, interrupted = None, None, 0, False
    # from here to the end a signal asks to stop at the next frame; the bag is closed and put in
    # place whatever else arrives
    stop = stop_request().protect()
    # written beside a previous bag, which it replaces once complete
    new = ReplacedPath(args.out)
    with new, \
            BagWriter(new.path, args.storage, args.version, False, custom,
                      ros_distro=distro) as bag, \
            Progress(total, label='make-bag', unit='pairs', quiet=args.quiet) as bar:
        visible_type = m.IMAGE if args.visible_format == 'raw' else m.COMPRESSED
        for topic, msgtype in ((THERMAL_TOPIC, m.IMAGE), (THERMAL_INFO_TOPIC, m.CAMERA_INFO),
                               (visible_topic, visible_type), (VISIBLE_INFO_TOPIC, m.CAMERA_INFO)):
            bag.add_topic(topic, msgtype)
        for _ in range(args.repeat):
            for pair in pairs:
                interrupted = interrupted or stop.requested
                if interrupted or write_error:
                    break
                try:
                    thermal, visible, _, _ = load_pair(pair, max_pixels, for_scoring=False)
                    if thermal.shape[:2] != visible.shape[:2] and not args.unregistered:
                        raise InputError(f'thermal {thermal.shape[1]}x{thermal.shape[0]} and '
                                         f'visible {visible.shape[1]}x{visible.shape[0]} '
                                         f'differ; make-bag needs registered pairs')
                    visible_ns = start_ns + frame * period_ns
                    thermal_ns = visible_ns + int(round(rng.uniform(-jitter_ns, jitter_ns)))
                    thermal_msg = thermal_message(thermal, args.thermal_encoding, rng,
                                                  m.make_header(thermal_ns, THERMAL_FRAME),
                                                  pair.name)
                except SgdfuseError as err:
                    skipped.setdefault(pair.name, str(err))
                    bar.update()
                    continue
                height, width = visible.shape[:2]
                k = intrinsics(width, height)
                visible_header = m.make_header(visible_ns, VISIBLE_FRAME)
                if args.visible_format == 'raw':
                    visible_msg = m.image_msg(visible, visible_header, 'bgr8')
                else:
                    visible_msg = m.compressed_msg(visible, visible_header, 'jpeg',
                                                   args.jpeg_quality)
                visible_log = visible_ns + delay(VISIBLE_DELAY_MS)
                thermal_log = thermal_ns + delay(THERMAL_DELAY_MS)
                try:
                    bag.write(visible_topic, visible_log, visible_msg)
                    bag.write(VISIBLE_INFO_TOPIC, visible_log, m.camera_info_msg(
                        width, height, m.make_header(visible_ns, VISIBLE_FRAME), k=k))
                    bag.write(THERMAL_TOPIC, thermal_log, thermal_msg)
                    t_height, t_width = thermal.shape[:2]
                    bag.write(THERMAL_INFO_TOPIC, thermal_log, m.camera_info_msg(
                        t_width, t_height, m.make_header(thermal_ns, THERMAL_FRAME),
                        k=intrinsics(t_width, t_height)))
                    bag.checkpoint()
                except Exception as err:  # noqa: B902
                    if not is_write_failure(err):
                        raise
                    write_error = write_failure(err, Path(args.out))
                    close_error = bag.close_partial()  # the frames before it, closed and valid
                    break
                frame += 1
                bar.update()
        if not bag.messages and not write_error:
            bag.abort()  # an empty bag would only block the next run
        bar.done(f'{frame} pairs -> {Path(args.out)}')
    kept = new.finish(not write_error and not interrupted and frame > 0)
    written = (f'{Path(args.out)} holds {frame} frames ({bag.messages} messages, closed)'
               if bag.messages else f'nothing was written to {Path(args.out)}')
    if not kept:
        written = (f'nothing of this run was kept: the previous {Path(args.out)} is as it was')
    if write_error:
        close = f'; closing the bag failed too ({close_error})' if close_error else ''
        raise InputError(f'{write_error}; {written}{close}')
    if skipped and frame:  # said even with --quiet: work that was not done
        first = next(iter(skipped.items()))
        print(f'make-bag: skipped {len(skipped)} pair(s) that cannot be written faithfully '
              f'(first: {first[0]}: {first[1]})', file=sys.stderr)
    if interrupted:
        raise stop.interrupted(f'after {frame} of {total} frames; {written}')
    if frame == 0:
        raise InputError(f'no pair could be written ({len(skipped)} skipped; first: '
                         f'{next(iter(skipped.items()), ("", "none"))[1]}); {written}')
    if not args.quiet:
        print(f'make-bag: wrote {Path(args.out)} ({args.storage}, metadata version '
              f'{args.version}, ROS distro {distro}): {THERMAL_TOPIC} '
              f'({args.thermal_encoding}), {visible_topic} '
              f"({'bgr8' if args.visible_format == 'raw' else 'jpeg'}), {THERMAL_INFO_TOPIC}, "
              f'{VISIBLE_INFO_TOPIC}; {frame} frames at {args.rate:g} Hz, jitter <= '
              f'{args.jitter_ms:g} ms', file=sys.stderr)
    return 0
