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
A synthetic thermal + visible camera pair that publishes over Cyclone DDS like ROS 2 drivers.

For trying ``sgdfuse live`` (or the ROS node) without cameras, and for the live test and the
live benchmark. It publishes ``thermal/image_raw`` (mono16, like a radiometric camera),
``rgb/image_raw`` (bgr8) and ``rgb/camera_info`` at a fixed rate, with independent stamp jitter
per camera (two free-running drivers never stamp the same instant).

The scenes are :func:`sgdfuse_ros.eval.synthetic_pairs.make_pair` night streets: warm people that
the visible camera barely sees. Frame ``i`` shows scene ``i % scenes``, so a receiver can rebuild
exactly what was sent from the frame index.

    python -m sgdfuse_ros.transport.synthetic_camera --rate 30 --frames 300 --size 640x512

Every ``--bad-every`` frames the thermal image is deliberately broken (alternately a wrong
encoding and a truncated payload) to exercise the node's rejection path.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import time
from typing import List, Optional

import numpy as np

from .base import SENSOR_DATA
from .dds import DdsTransport, localhost_config
from .. import messages
from ..errors import InputError
from ..eval.synthetic_pairs import make_pair
from ..exits import exit_status

THERMAL_FRAME = 'thermal_optical'
VISIBLE_FRAME = 'rgb_optical'
BAD_KINDS = ('encoding', 'decode')


class SyntheticCamera:
    """Precomputed scenes; ``thermal(i)``, ``visible(i)``, ``targets(i)`` for frame ``i``."""

    def __init__(self, width: int = 640, height: int = 512, scenes: int = 4, seed: int = 0):

        self.width, self.height = int(width), int(height)
        self._scenes = [make_pair(seed + k, (self.width, self.height)) for k in range(scenes)]
        # 16-bit counts as a radiometric camera delivers them (about 7000 + 60 per grey level)
        self._thermal = [(7000 + 60 * ir.astype(np.uint16)).astype(np.uint16)
                         for ir, _, _ in self._scenes]

    def scene(self, index: int) -> int:
        return index % len(self._scenes)

    def thermal(self, index: int) -> np.ndarray:
        return self._thermal[self.scene(index)]

    def visible(self, index: int) -> np.ndarray:
        return self._scenes[self.scene(index)][1]

    def targets(self, index: int) -> np.ndarray:
        return self._scenes[self.scene(index)][2]

    def intrinsics(self) -> np.ndarray:
        w, h = self.width, self.height
        return np.array([0.9 * w, 0, w / 2, 0, 0.9 * w, h / 2, 0, 0, 1], np.float64)

    # --- messages --------------------------------------------------------------------------------
    def thermal_msg(self, index: int, stamp_ns: int, bad: Optional[str] = None):
        header = messages.make_header(int(stamp_ns), THERMAL_FRAME)
        msg = messages.image_msg(self.thermal(index), header, 'mono16')
        if bad == 'encoding':  # a colour encoding on a thermal topic
            msg = messages.msg_type(messages.IMAGE)(
                header=header, height=msg.height, width=msg.width // 3 or 1, encoding='bgr8',
                is_bigendian=0, step=(msg.width // 3 or 1) * 3, data=msg.data[
                    :(msg.width // 3 or 1) * 3 * msg.height])
        elif bad == 'decode':  # the payload is shorter than height * step
            msg = messages.msg_type(messages.IMAGE)(
                header=header, height=msg.height, width=msg.width, encoding=msg.encoding,
                is_bigendian=0, step=msg.step, data=msg.data[: msg.data.size // 2])
        return msg

    def visible_msg(self, index: int, stamp_ns: int):
        header = messages.make_header(int(stamp_ns), VISIBLE_FRAME)
        return messages.image_msg(self.visible(index), header, 'bgr8')

    def camera_info_msg(self, stamp_ns: int):
        return messages.camera_info_msg(self.width, self.height,
                                        messages.make_header(int(stamp_ns), VISIBLE_FRAME),
                                        k=self.intrinsics())


def bad_kind(index: int, bad_every: int) -> Optional[str]:
    """Which frames are broken on purpose (none when ``bad_every`` is 0)."""
    if bad_every <= 0 or index % bad_every != bad_every - 1:
        return None
    return BAD_KINDS[(index // bad_every) % len(BAD_KINDS)]


def run(transport, camera: SyntheticCamera, rate_hz: float = 30.0, frames: int = 300,
        jitter_ms: float = 3.0, seed: int = 0, bad_every: int = 0,
        wait_subscribers: int = 0, wait_timeout_s: float = 15.0, qos=None) -> dict:
    """Publish ``frames`` frames at ``rate_hz``; returns the log of what was sent when."""
    qos = qos or SENSOR_DATA
    thermal_pub = transport.create_publisher(messages.INPUT_TOPICS['thermal'], messages.IMAGE, qos)
    visible_pub = transport.create_publisher(messages.INPUT_TOPICS['visible'], messages.IMAGE, qos)
    info_pub = transport.create_publisher(messages.CAMERA_INFO_TOPIC, messages.CAMERA_INFO, qos)
    if wait_subscribers > 0:
        deadline = time.monotonic() + wait_timeout_s
        while min(thermal_pub.subscription_count(), visible_pub.subscription_count()) < \
                wait_subscribers:
            if time.monotonic() > deadline:
                raise TimeoutError(f'no subscriber matched the camera topics within '
                                   f'{wait_timeout_s:g} s')
            time.sleep(0.05)
    rng = np.random.default_rng(seed)
    period = 1.0 / rate_hz
    log: List[dict] = []
    start = time.monotonic() + 0.05
    for index in range(frames):
        due = start + index * period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        capture_ns = time.time_ns()
        jitter = rng.uniform(-jitter_ms, jitter_ms, 2) * 1e6
        thermal_ns, visible_ns = capture_ns + int(jitter[0]), capture_ns + int(jitter[1])
        bad = bad_kind(index, bad_every)
        entry = {'index': index, 'thermal_ns': thermal_ns, 'visible_ns': visible_ns, 'bad': bad}
        thermal = camera.thermal_msg(index, thermal_ns, bad)
        visible = camera.visible_msg(index, visible_ns)
        info = camera.camera_info_msg(visible_ns)
        order = ('thermal', 'visible') if rng.random() < 0.5 else ('visible', 'thermal')
        for which in order:
            if which == 'thermal':
                thermal_pub.publish(thermal)
                entry['thermal_sent'] = time.time()
            else:
                info_pub.publish(info)
                visible_pub.publish(visible)
                entry['visible_sent'] = time.time()
        log.append(entry)
    late = [e for e in log if max(e['thermal_sent'], e['visible_sent']) * 1e9 - max(
        e['thermal_ns'], e['visible_ns']) > 2 * period * 1e9]
    return {'rate_hz': rate_hz, 'width': camera.width, 'height': camera.height,
            'frames': log, 'late_publishes': len(late), 'thermal_frame': THERMAL_FRAME,
            'visible_frame': VISIBLE_FRAME}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m sgdfuse_ros.transport.synthetic_camera',
        description='Publish a synthetic thermal (mono16) + RGB (bgr8) camera pair over DDS '
                    'with ROS 2 conventions.')
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('ROS_DOMAIN_ID', '0') or 0))
    parser.add_argument('--namespace', default='/')
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--size', default='640x512', help='WIDTHxHEIGHT')
    parser.add_argument('--jitter-ms', type=float, default=3.0,
                        help='stamp jitter of each camera, uniform +-ms')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--scenes', type=int, default=4)
    parser.add_argument('--bad-every', type=int, default=0,
                        help='break every N-th thermal frame (0: never)')
    parser.add_argument('--wait-subscribers', type=int, default=1,
                        help='wait until this many subscribers match both image topics')
    parser.add_argument('--wait-timeout', type=float, default=20.0)
    parser.add_argument('--localhost-only', action='store_true',
                        help='loopback only (also ROS_LOCALHOST_ONLY=1)')
    parser.add_argument('--log', type=Path, help='write what was sent when (JSON)')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BaseException as err:  # noqa: B902 - the package's one handler says which are whose
        code = exit_status('synthetic_camera', err)
        if code is None:
            raise
        return code


def _run(args) -> int:
    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise InputError(f'--size expects WIDTHxHEIGHT, got {args.size!r}') from None
    localhost = args.localhost_only or os.environ.get('ROS_LOCALHOST_ONLY') == '1'
    config = localhost_config() if localhost and not os.environ.get('CYCLONEDDS_URI') else None
    camera = SyntheticCamera(width, height, args.scenes, args.seed)
    transport = DdsTransport(args.domain_id, args.namespace, 'synthetic_camera', config)
    try:
        log = run(transport, camera, args.rate, args.frames, args.jitter_ms, args.seed,
                  args.bad_every, args.wait_subscribers, args.wait_timeout)
    finally:
        time.sleep(0.2)  # let the last fragments leave before the participant goes
        transport.close()
    if args.log:
        args.log.write_text(json.dumps(log))
    print(f"synthetic_camera: sent {len(log['frames'])} frame pairs at {args.rate:g} Hz "
          f"({log['late_publishes']} published late)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
