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
``sgdfuse live``: the fusion node without ROS 2, over Cyclone DDS with ROS 2 conventions.

Runs exactly the node logic the rclpy node runs (:class:`~sgdfuse_ros.node.core.FusionNodeCore`)
on the DDS transport (:mod:`sgdfuse_ros.transport.dds`): it subscribes to
``<ns>/thermal/image_raw``, ``<ns>/rgb/image_raw`` and ``<ns>/rgb/camera_info`` and publishes
``<ns>/fused/image``, ``<ns>/fused/camera_info``, ``<ns>/semantic/labels``,
``<ns>/semantic/targets``, ``<ns>/semantic/detections`` (vision_msgs/Detection2DArray),
``<ns>/semantic/overlay`` (while subscribed) and ``/diagnostics``.
A ROS 2 graph on the same network and domain (rmw_cyclonedds_cpp or any RTPS-compatible rmw)
sees these as ordinary ROS topics.

    sgdfuse live --namespace /car --domain-id 3 --thermal-topic /flir/image_raw

Stops on Ctrl-C, SIGTERM or SIGHUP (a closed terminal) or after ``--duration``, then prints the
frame accounting (and writes ``--stats-json``); exit status 0 when the books balance.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import sys
import time

from .guard import stop_request
from .outputs import check_apart, config_inputs
from .outputs import check_output_file
from .values import (float_range, int_in, namespace, node_name, override, remap_rule,
                     topic_name)
from ..config import load_config
from ..errors import ConfigError
from ..messages import CAMERA_INFO_TOPIC, FUSED_TOPIC, INPUT_TOPICS
from ..node.core import accounting_errors, FusionNodeCore
from ..transport.base import parse_remaps, resolve_topic
from ..transport.dds import DdsTransport, localhost_config
from ..writing import write_bytes


def add_arguments(parser) -> None:
    parser.add_argument('--config', type=Path, default=None,
                        help='parameter file (ROS 2 layout; default: the shipped '
                             'config/fusion.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], type=override,
                        metavar='NAME=VALUE', help='override one parameter (repeatable)')
    parser.add_argument('--namespace', default='/', type=namespace,
                        help="ROS namespace of the node's topics")
    parser.add_argument('--name', default='fusion_node', type=node_name,
                        help='node name (diagnostics)')
    parser.add_argument('--domain-id', type=int_in(0, 232), default=None,
                        help='DDS domain (default: $ROS_DOMAIN_ID, else 0)')
    parser.add_argument('--thermal-topic', type=topic_name, default=None,
                        help=f"remap {INPUT_TOPICS['thermal']} to this topic")
    parser.add_argument('--rgb-topic', type=topic_name, default=None, dest='visible_topic',
                        help=f"remap {INPUT_TOPICS['visible']} to this topic")
    parser.add_argument('--camera-info-topic', type=topic_name, default=None,
                        help=f'remap {CAMERA_INFO_TOPIC} to this topic')
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        type=remap_rule,
                        help='any other remapping, ROS syntax (repeatable)')
    parser.add_argument('--localhost-only', action='store_true',
                        help='stay on the loopback interface (also ROS_LOCALHOST_ONLY=1); '
                             'ignored when CYCLONEDDS_URI is set')
    parser.add_argument('--duration', type=float_range(0.0), default=0.0,
                        help='stop after this many seconds (0: run until Ctrl-C)')
    parser.add_argument('--status-period', type=float_range(0.0), default=10.0,
                        help='print a status line every this many seconds (0: never)')
    parser.add_argument('--stats-json', type=Path, default=None,
                        help='write the final statistics (accounting, latency) as JSON')


def _remaps(args, namespace: str, name: str) -> dict:

    rules = list(args.remap)
    for base, target in ((INPUT_TOPICS['thermal'], args.thermal_topic),
                         (INPUT_TOPICS['visible'], args.visible_topic),
                         (CAMERA_INFO_TOPIC, args.camera_info_topic)):
        if target:
            rules.append(f'{base}:={target}')
    try:
        return parse_remaps(rules, namespace, name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def status_line(stats: dict) -> str:
    inputs = stats['inputs']
    latency = stats['latency_ms'].get('end_to_end')
    parts = [f"{s} {c['rate_hz']:.1f} Hz" for s, c in inputs.items()]
    parts.append(f"fused {stats['output']['rate_hz']:.1f} Hz")
    if latency:
        parts.append(f"latency p50 {latency['p50']:.1f} ms p90 {latency['p90']:.1f} ms")
    dropped = sum(sum(c['dropped'].values()) for c in inputs.values())
    rejected = sum(sum(c['rejected'].values()) for c in inputs.values())
    parts.append(f'dropped {dropped} rejected {rejected} frames')
    return ', '.join(parts)


class PairingWatch:
    """
    Say once, loudly, when both cameras deliver but no pair has formed for ``after_s`` seconds.

    The line gives how far apart the latest thermal and visible stamps are, against ``sync.slop``:
    the usual cause is two cameras stamping with unsynchronised clocks. It re-arms once pairs
    form again.
    """

    def __init__(self, after_s: float = 5.0, clock=time.monotonic):
        self.after_s = after_s
        self.clock = clock
        self.since = None
        self.warned = False

    def check(self, stats: dict, last_stamps: dict, slop: float):
        """Return the warning line the first time the condition has lasted, else None."""
        inputs = stats['inputs']
        arriving = all(c['received'] > 0 for c in inputs.values())
        paired = sum(c['published'] + c['dropped']['busy'] + c['rejected']['pipeline']
                     for c in inputs.values())
        if not arriving or paired:
            self.since = None
            if paired:
                self.warned = False
            return None
        now = self.clock()
        if self.since is None:
            self.since = now
            return None
        if self.warned or now - self.since < self.after_s:
            return None
        self.warned = True
        counts = ', '.join(f"{s} {c['received']}" for s, c in inputs.items())
        stamps = [v for v in (last_stamps or {}).values() if v is not None]
        gap = (f'the latest thermal and RGB stamps differ by {abs(stamps[0] - stamps[1]):.3f} s'
               if len(stamps) == 2 else 'the stamps of the two cameras never came within it')
        return (f'sgdfuse live: WARNING: images arrive ({counts}) but no thermal/RGB pair has '
                f'formed for {now - self.since:.0f} s: {gap}, sync.slop is {slop:g} s (are the '
                f'cameras stamping with unsynchronised clocks? fix the stamps or raise '
                f'sync.slop)')


def newest_stamps(core) -> dict:
    """Return the newest thermal and visible stamps the node's synchroniser saw (None: unknown)."""
    sync = getattr(core, 'sync', None)
    if sync is None:
        return {}
    thermal, visible = sync.newest
    return {'thermal': thermal, 'visible': visible}


def main(args) -> int:

    if args.stats_json is not None:
        check_output_file(args.stats_json, '--stats-json')  # before the node starts
    overrides = dict(args.overrides)
    config = load_config(args.config, overrides)
    if args.stats_json is not None:
        check_apart(config_inputs(args.config, config), [('--stats-json', args.stats_json)])
    domain = args.domain_id
    if domain is None:
        try:
            domain = int(os.environ.get('ROS_DOMAIN_ID', '0') or 0)
        except ValueError:
            raise ConfigError('ROS_DOMAIN_ID must be an integer') from None
    namespace = '/' + args.namespace.strip('/')
    localhost = args.localhost_only or os.environ.get('ROS_LOCALHOST_ONLY') == '1'
    xml = localhost_config() if localhost and not os.environ.get('CYCLONEDDS_URI') else None
    remaps = _remaps(args, namespace, args.name)
    transport = DdsTransport(domain, namespace, args.name, xml, remaps)
    full_name = resolve_topic(args.name, namespace)
    core = FusionNodeCore(transport, config, name=full_name,
                          logger=logging.getLogger('sgdfuse_ros.live'))
    # a stop signal (SIGINT, SIGTERM, SIGHUP) is the node's normal end: it stops, shuts the
    # node down and writes the accounting whatever else arrives (exit 0 when the books balance)
    stop = stop_request().protect()
    stop.handled = True
    try:
        core.configure()
        core.activate()
        print(f'sgdfuse live: {full_name} active on {core.device}, DDS domain {domain}: '
              f"{transport.resolve_topic_name(INPUT_TOPICS['thermal'])} + "
              f"{transport.resolve_topic_name(INPUT_TOPICS['visible'])} -> "
              f'{transport.resolve_topic_name(FUSED_TOPIC)} (Ctrl-C to stop)', flush=True)
        started = time.monotonic()
        next_status = started + args.status_period
        watch = PairingWatch()
        while not stop.requested:
            wait = 1.0  # the pairing watch looks every second
            if args.duration > 0:
                wait = min(wait, max(0.0, started + args.duration - time.monotonic()))
            if stop.wait(wait):
                break
            if args.duration > 0 and time.monotonic() - started >= args.duration:
                break
            stats = core.stats()
            warning = watch.check(stats, newest_stamps(core), config['sync.slop'])
            if warning:
                print(warning, file=sys.stderr, flush=True)
            if args.status_period > 0 and time.monotonic() >= next_status:
                next_status += args.status_period
                print('sgdfuse live: ' + status_line(stats), flush=True)
    finally:
        try:
            core.shutdown()
        finally:
            transport.close()
    stats = core.stats()
    if args.stats_json:  # whole or not at all (a temporary file, then a rename)
        write_bytes(args.stats_json, json.dumps(stats, indent=1).encode())
    print('sgdfuse live: stopped; ' + status_line(stats), flush=True)
    for source, counts in stats['inputs'].items():
        dropped = {k: v for k, v in counts['dropped'].items() if v}
        rejected = {k: v for k, v in counts['rejected'].items() if v}
        print(f"  {source}: received {counts['received']}, published {counts['published']}, "
              f"dropped {dropped or 0}, rejected {rejected or 0}, pending {counts['pending']}")
    problems = accounting_errors(stats)
    for problem in problems:
        print(f'sgdfuse live: accounting mismatch: {problem}', file=sys.stderr)
    return 1 if problems else 0
