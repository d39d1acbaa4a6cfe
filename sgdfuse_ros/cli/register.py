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


r"""
``sgdfuse register``: find the thermal -> visible homography of a camera rig from its frames.

    sgdfuse register my_recording/ --out config/rig.yaml        # a bag: topics found as replay
    sgdfuse register --ir frames/ir --vis frames/vis --out rig.yaml   # pairs matched by name

No checkerboard and no labels: the thermal and visible edges of many frames of one rig are
matched (:mod:`sgdfuse_ros.registration.estimate`). From a bag, frames are decoded, checked,
paired (``sync.slop``) and their thermal images put through the automatic gain control as the
node does it, from the same ``--config`` / ``--set``; the images of the two cameras may have
any sizes. Writes:

- ``--out FILE``: a ROS 2 parameter file with ``registration.homography`` (and every parameter
  of ``--config`` / ``--set`` that differs from the defaults), which ``--config FILE`` and the
  launch file's ``params_file:=FILE`` take as is;
- ``FILE`` with ``_check.png`` instead of its suffix: several frames, each as a checkerboard of
  the registered thermal image over the visible one and as thermal edges (red) drawn over the
  visible image; look at it before you use the file;
- one line: the sizes, frames used, the thermal field and the corner uncertainty (visible
  pixels, the spread of the estimate when a fifth of the frames is left out) with a confidence
  word.

When the frames do not determine the homography (too few, no texture, dark visible frames,
cameras that do not overlap, frames that disagree) it says why in one line, writes nothing and
exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
import sys
import time

import cv2
import numpy as np
import yaml

from .options import add_camera_topics, add_config, add_pair_choice, pair_choice
from .outputs import check_output_file
from .values import float_range
from .values import int_at_least
from ..bag.reader import BagReadError, choose_topics, open_bag
from ..config import load_config
from ..errors import InputError
from ..eval.datasets import choose_pairs, load_pair
from ..intake import ApproximateSync, frame_from_bytes, pair_frame, Rejected
from ..messages import deserialize
from ..parameters import defaults
from ..pipeline.images import ThermalAGC, visible_to_bgr
from ..pipeline.undistort import Undistortion
from ..progress import Progress
from ..registration.check import check_image
from ..registration.estimate import estimate, scale_between
from ..writing import write_bytes

KEEP_FRAMES = 400        # frames kept in memory (evenly thinned beyond that)
WORK_WIDTH = 640         # visible frames are kept at most this wide (the estimate's finest level)


def add_arguments(parser) -> None:
    parser.add_argument('bag', nargs='?', metavar='BAG',
                        help='input bag: rosbag2 directory (sqlite3 or mcap), .mcap or .db3 file')
    parser.add_argument('--ir', metavar='DIR', help='folder of thermal images (instead of a bag)')
    parser.add_argument('--vis', metavar='DIR', help='folder of visible images, matched to '
                        '--ir by file name')
    add_pair_choice(parser.add_argument_group(
        'which pairs (--split, --subset and --time-of-day choose image files; --limit also '
        'stops reading a bag after N pairs)'))
    parser.add_argument('--out', required=True, metavar='FILE',
                        help='parameter file to write (YAML, ROS 2 layout)')
    add_camera_topics(parser)
    add_config(parser, ': AGC, sync.slop, limits')
    parser.add_argument('--min-frames', type=int_at_least(1), default=3,
                        help='fewest usable pairs to register from (default 3)')
    parser.add_argument('--max-uncertainty', type=float_range(0.0, low_open=True), default=None,
                        metavar='PX',
                        help='refuse when the corner uncertainty is above this many visible '
                        'pixels (default: 3 per 640 pixels of visible width)')
    parser.add_argument('--no-undistort', action='store_true',
                        help="use the frames as they come even when the bag's camera_info "
                        'messages have distortion coefficients')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


class Frames:
    """The pairs kept for the estimate: thermal after AGC and visible grey, both uint8."""

    def __init__(self):
        self.thermal = []
        self.visible = []
        self.visible_size = None   # native (width, height)
        self.thermal_size = None
        self.seen = 0
        self.stride = 1
        self.skipped = {}
        self.infos = {'thermal': None, 'visible': None}   # the first CameraInfo of each camera

    def add(self, thermal_u8, visible_gray) -> None:
        size_t = (thermal_u8.shape[1], thermal_u8.shape[0])
        size_v = (visible_gray.shape[1], visible_gray.shape[0])
        if self.visible_size is None:
            self.thermal_size, self.visible_size = size_t, size_v
        if (size_t, size_v) != (self.thermal_size, self.visible_size):
            self.skipped['size changed'] = self.skipped.get('size changed', 0) + 1
            return
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        if size_v[0] > WORK_WIDTH:
            height = int(round(size_v[1] * WORK_WIDTH / size_v[0]))
            visible_gray = cv2.resize(visible_gray, (WORK_WIDTH, height),
                                      interpolation=cv2.INTER_AREA)
        self.thermal.append(thermal_u8)
        self.visible.append(visible_gray)
        if len(self.thermal) >= KEEP_FRAMES:  # keep every other one from now on
            self.thermal, self.visible = self.thermal[::2], self.visible[::2]
            self.stride *= 2

    def to_native(self, h_work):
        """Homography in the kept visible frames' pixels -> in the camera's own pixels."""
        work = self.visible[0].shape
        native = (self.visible_size[1], self.visible_size[0])
        h = np.linalg.inv(scale_between(native, work)) @ h_work
        return h / h[2, 2]


def _thermal_u8(agc, image, encoding):
    return np.clip(np.rint(agc(image, encoding) * 255.0), 0, 255).astype(np.uint8)


def _visible_gray(image, encoding):

    bgr, colour = visible_to_bgr(image, encoding)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if colour else bgr


def frames_from_folders(args, config, bar) -> Frames:
    frames = Frames()
    pairs = choose_pairs(None, args.ir, args.vis, **pair_choice(args))
    bar.total = len(pairs)
    agc = ThermalAGC.from_config(config)
    for pair in pairs:
        try:
            thermal, visible, _, _ = load_pair(pair, config['limits.max_input_pixels'],
                                               for_scoring=False)
            frames.add(_thermal_u8(agc, thermal, None), _visible_gray(visible, None))
        except InputError as err:
            frames.skipped[str(err)[:80]] = frames.skipped.get(str(err)[:80], 0) + 1
        bar.update()
    return frames


def frames_from_bag(args, config, bar, say) -> Frames:

    frames = Frames()
    agc = ThermalAGC.from_config(config)
    sync = ApproximateSync(slop=config['sync.slop'], queue_size=config['sync.queue_size'])
    limit = config['limits.max_input_pixels']
    with open_bag(Path(args.bag)) as bag:
        topics = choose_topics(bag, args.thermal_topic, args.visible_topic)
        say(f'{bag.description}; {topics.describe()}')
        roles = {topics.thermal.name: 'thermal', topics.visible.name: 'visible'}
        for role, info in (('thermal', topics.thermal_info), ('visible', topics.visible_info)):
            if info is not None and not args.no_undistort:
                roles[info.name] = role + '_info'
        bar.total = min(topics.thermal.count, topics.visible.count) or None
        stream = bag.messages(list(roles))
        paired = 0
        try:
            for topic, msgtype, log_ns, raw in stream:
                role = roles[topic]
                if role.endswith('_info'):
                    if frames.infos[role[:-5]] is None:
                        try:
                            frames.infos[role[:-5]] = deserialize(raw, msgtype)
                        except Exception as err:  # noqa: B902 (any decoding failure)
                            say(f'a {role[:-5]} camera_info message did not decode '
                                f'({type(err).__name__}); that camera is used as it comes')
                    continue
                try:
                    frame = frame_from_bytes(roles[topic], raw, msgtype, limit, log_ns)
                except Rejected as err:
                    frames.skipped[err.reason] = frames.skipped.get(err.reason, 0) + 1
                    continue
                for pair in pair_frame(sync, frame)[1]:
                    try:
                        frames.add(_thermal_u8(agc, pair.thermal.image, pair.thermal.encoding),
                                   _visible_gray(pair.visible.image, pair.visible.encoding))
                    except InputError as err:
                        key = str(err)[:80]
                        frames.skipped[key] = frames.skipped.get(key, 0) + 1
                    bar.update()
                    paired += 1
                if args.limit and paired >= args.limit:
                    break
        except BagReadError as err:
            say(f'{err}; registering from the {frames.seen} pairs read before it')
        finally:
            stream.close()
    return frames


def undistort_frames(frames: Frames, say) -> bool:
    """Undistort the kept frames of each camera whose camera_info has distortion coefficients."""
    done = []
    for role, images in (('thermal', frames.thermal), ('visible', frames.visible)):
        try:
            undistortion = Undistortion.from_info(frames.infos[role])
        except InputError as err:
            say(f'the {role} camera_info cannot undistort ({err}); that camera is used as it '
                'comes')
            continue
        if undistortion is None:
            continue
        images[:] = [undistortion.apply(image) for image in images]
        done.append(role)
    if done:
        say(f"undistorted the {' and '.join(done)} frames with their camera_info (the file sets "
            'registration.undistort: true, so the node does the same)')
    return bool(done)


def parameter_file(homography, config: dict, summary: str) -> str:
    """Return the ROS 2 parameter file: the homography and the config's non-default values."""
    base = defaults()
    values = {k: v for k, v in config.items() if k in base and v != base[k]
              and k != 'registration.homography'}
    values['registration.homography'] = [float(x) for x in homography.ravel()]
    tree: dict = {}
    for name, value in sorted(values.items()):
        node = tree
        parts = name.split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    body = yaml.safe_dump({'/**': {'ros__parameters': tree}}, default_flow_style=None,
                          sort_keys=False, width=100)
    head = ('# Written by `sgdfuse register`: ' + summary + '\n'
            '# registration.homography maps thermal pixels to visible pixels of the two image '
            'sizes above;\n# register again when a camera moves or changes resolution or lens.\n')
    return head + body


def main(args) -> int:
    if bool(args.bag) == bool(args.ir or args.vis):
        raise InputError('give a bag, or --ir DIR and --vis DIR (not both)')
    if not args.bag and not (args.ir and args.vis):
        raise InputError('--ir and --vis go together')
    if args.bag and (args.split or args.subset or args.when):
        raise InputError('--split, --subset and --time-of-day choose image files (--ir/--vis); '
                         "a bag's frames are read as recorded (--limit N stops after N pairs)")
    if args.max_uncertainty is not None and not args.max_uncertainty > 0:
        raise InputError(f'--max-uncertainty must be > 0, got {args.max_uncertainty}')
    config = load_config(args.config, dict(args.overrides))  # checked at parse time
    out = Path(args.out)
    check_output_file(out, '--out')
    if out.exists() and not args.overwrite:
        raise InputError(f'--out {out} exists; add --overwrite to replace it')
    check_path = out.with_name(out.stem + '_check.png')

    def say(text: str) -> None:
        if not args.quiet:
            print(f'register: {text}', file=sys.stderr)

    start = time.perf_counter()
    with Progress(None, label='register', unit='pairs', quiet=args.quiet) as bar:
        frames = (frames_from_bag(args, config, bar, say) if args.bag
                  else frames_from_folders(args, config, bar))
        bar.done(f'{frames.seen} pairs read')
    if frames.skipped:
        say('skipped: ' + ', '.join(f'{k} x{n}' for k, n in frames.skipped.items()))
    if not frames.thermal:
        raise InputError('no usable thermal/visible pair was found to register from')
    if undistort_frames(frames, say):
        config = dict(config)
        config['registration.undistort'] = True
    steps = []
    result = estimate(frames.thermal, frames.visible, min_frames=args.min_frames,
                      max_uncertainty=(None if args.max_uncertainty is None else
                                       args.max_uncertainty * frames.visible[0].shape[1]
                                       / frames.visible_size[0]),
                      progress=lambda what: (steps.append(what), say(what)))
    h = frames.to_native(result.homography)
    scale = frames.visible_size[0] / frames.visible[0].shape[1]
    uncertainty = result.uncertainty_px * scale
    corners = result.corners() * scale
    centre = corners.mean(axis=0)
    angle = float(np.degrees(np.arctan2(corners[1, 1] - corners[0, 1],
                                        corners[1, 0] - corners[0, 0])))
    tw, th = frames.thermal_size
    vw, vh = frames.visible_size
    summary = (f'thermal {tw}x{th} -> visible {vw}x{vh} from {result.frames_used} of '
               f'{frames.seen} pairs: field {100 * result.field:.0f} % of the visible width, '
               f'centre ({centre[0]:.0f}, {centre[1]:.0f}), rotation {angle:+.1f} deg; corner '
               f'uncertainty {uncertainty:.2f} px (confidence {result.confidence})')
    picks = np.linspace(0, len(frames.thermal) - 1, min(4, len(frames.thermal))).round()
    picks = sorted({int(i) for i in picks})
    image = check_image([frames.thermal[i] for i in picks], [frames.visible[i] for i in picks],
                        result.homography, caption='left: checkerboard thermal/visible; right: '
                        'thermal edges (red) on visible; yellow: thermal field')
    ok, png = cv2.imencode('.png', image)
    if not ok:
        raise InputError('could not encode the check image')
    write_bytes(out, parameter_file(h, config, summary).encode())
    write_bytes(check_path, png.tobytes())
    for note in result.notes:
        say(note)
    print(f'register: {summary}; wrote {out} and {check_path} '
          f'({time.perf_counter() - start:.0f} s)')
    return 0
