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
Soak benchmark: a camera pair streams into ``sgdfuse live`` over Cyclone DDS.

The stream runs for a fixed time; the node must not crash, lose a frame silently, or grow in
memory.

    nice -n 10 .venv/bin/python benchmarks/bench_soak.py                  # 60 s, 30 Hz
    nice -n 10 .venv/bin/python benchmarks/bench_soak.py --seconds 600 --set refiner.steps=1

Three processes on the loopback interface, on a DDS domain of their own:

- the camera (this script with ``--camera``): a thermal camera (``--thermal-size``, default
  640x512, mono16 14-bit counts) and an RGB camera (``--rgb-size``, default 1280x720, bgr8,
  with camera_info) at ``--rate`` with +-3 ms stamp jitter each. The thermal field of view lies
  inside the RGB one: the node is given the homography (thermal pixel -> RGB pixel, a uniform
  scale with the thermal image centred, covering 85 % of the RGB image's limiting side) and the
  thermal frames are rendered through it from the same scenes. Every ``--bad-every`` frames the
  thermal image is broken on purpose (alternately an unknown encoding and a payload shorter than
  height * step). Messages are serialised once per scene; only their stamps change, so the
  camera's own cost stays small;
- the node: ``sgdfuse live`` with the shipped config, the homography and ``--set`` overrides;
- this process: subscribes to ``fused/image`` (reliable) like a downstream consumer and samples
  the node's resident memory (``VmRSS`` of ``/proc/PID/status``) and CPU time every
  ``--sample-period`` seconds.

Reported (table on stdout, ``results/<name>.json`` and ``.md``): delivered rate, latency
(receive time minus the RGB stamp, p50/p90/p99/max), the node's drops by reason and rejections
per input, messages lost on the way (sent by the camera, never received by the node), memory
after warm-up (``--warmup`` seconds) and its growth until the end (median of the last quarter
of the samples against the first quarter; the band and the peak are reported too), CPU use,
and checks: the node exits cleanly with no traceback, its books balance (received = published
+ dropped + rejected + pending, per input), every rejected frame is one the camera broke, and
memory grows by less than ``--max-growth`` percent after warm-up. The exit status is 0 when
every check passes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
import platform
import signal
import struct
import subprocess
import sys
import tempfile
import time

from harness import (add_stream_options, metric_table, percentiles,  # benchmarks/harness.py
                     start_live_node, stop_processes, write_results)
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the package, when not installed

NS = '/soak'
COUNTS_BASE, COUNTS_PER_LEVEL = 7000, 60   # 8-bit grey -> 14-bit radiometric counts
BAD_KINDS = ('encoding', 'decode')


def parse_size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise SystemExit(f'bench_soak: error: expected WIDTHxHEIGHT, got {text!r}') from None
    return width, height


def homography(thermal_size, rgb_size, coverage: float = 0.85):
    """Thermal pixel -> RGB pixel: uniform scale, thermal image centred in the RGB one."""
    (tw, th), (rw, rh) = thermal_size, rgb_size
    scale = coverage * min(rw / tw, rh / th)
    return [scale, 0.0, (rw - scale * tw) / 2.0, 0.0, scale, (rh - scale * th) / 2.0,
            0.0, 0.0, 1.0]


# --- the camera process --------------------------------------------------------------------------

def _stamped(cdr: bytes, stamp_ns: int) -> bytes:
    """CDR bytes of a message whose header comes first, with another stamp (sec, nanosec)."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return cdr[:4] + struct.pack('<iI', sec, nanosec) + cdr[12:]


class Scenes:
    """Serialised messages of ``count`` scenes; frame ``i`` shows scene ``i % count``."""

    def __init__(self, thermal_size, rgb_size, count: int = 4, seed: int = 0):
        import cv2
        from sgdfuse_ros.eval.synthetic_pairs import make_pair
        from sgdfuse_ros import messages

        (tw, th), (rw, rh) = thermal_size, rgb_size
        h = np.asarray(homography(thermal_size, rgb_size), np.float64).reshape(3, 3)
        header = messages.make_header(0, 'rgb_optical')
        self.thermal, self.visible, self.bad = [], [], []
        for k in range(count):
            ir, vis, _ = make_pair(seed + k, (rw, rh))
            counts = COUNTS_BASE + COUNTS_PER_LEVEL * ir.astype(np.float32)
            seen = cv2.warpPerspective(counts, h, (tw, th), flags=cv2.INTER_LINEAR |
                                       cv2.WARP_INVERSE_MAP)  # what the thermal camera sees
            thermal = np.clip(np.rint(seen), 0, 16383).astype(np.uint16)
            t_header = messages.make_header(0, 'thermal_optical')
            msg = messages.image_msg(thermal, t_header, 'mono16')
            self.thermal.append(messages.serialize(msg))
            self.visible.append(messages.serialize(messages.image_msg(vis, header, 'bgr8')))
        image_type = messages.msg_type(messages.IMAGE)
        wrong = image_type(header=t_header, height=th, width=tw, encoding='yuv422',
                           is_bigendian=0, step=2 * tw, data=msg.data)
        short = image_type(header=t_header, height=th, width=tw, encoding='mono16',
                           is_bigendian=0, step=2 * tw, data=msg.data[: msg.data.size // 2])
        self.bad = {'encoding': messages.serialize(wrong), 'decode': messages.serialize(short)}
        k = np.array([0.9 * rw, 0, rw / 2, 0, 0.9 * rw, rh / 2, 0, 0, 1], np.float64)
        self.info = messages.serialize(messages.camera_info_msg(rw, rh, header, k=k))


def bad_kind(index: int, bad_every: int):
    if bad_every <= 0 or index % bad_every != bad_every - 1:
        return None
    return BAD_KINDS[(index // bad_every) % len(BAD_KINDS)]


def camera_main(args) -> int:
    from sgdfuse_ros import messages
    from sgdfuse_ros.transport.base import SENSOR_DATA
    from sgdfuse_ros.transport.dds import DdsTransport

    scenes = Scenes(parse_size(args.thermal_size), parse_size(args.rgb_size), seed=args.seed)
    transport = DdsTransport(args.domain_id, NS, 'soak_camera')
    try:
        thermal_pub = transport.create_publisher(messages.INPUT_TOPICS['thermal'],
                                                 messages.IMAGE, SENSOR_DATA)
        visible_pub = transport.create_publisher(messages.INPUT_TOPICS['visible'],
                                                 messages.IMAGE, SENSOR_DATA)
        info_pub = transport.create_publisher(messages.CAMERA_INFO_TOPIC, messages.CAMERA_INFO,
                                              SENSOR_DATA)
        deadline = time.monotonic() + 120
        while min(thermal_pub.subscription_count(), visible_pub.subscription_count()) < 1:
            if time.monotonic() > deadline:
                print('bench_soak camera: no subscriber within 120 s', file=sys.stderr)
                return 3
            time.sleep(0.05)
        rng = np.random.default_rng(args.seed)
        period = 1.0 / args.rate
        frames, late = [], 0
        start = time.monotonic() + 0.1
        for index in range(args.frames):
            due = start + index * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -2 * period:
                late += 1
            capture = time.time_ns()
            jitter = rng.uniform(-3.0, 3.0, 2) * 1e6
            thermal_ns, visible_ns = capture + int(jitter[0]), capture + int(jitter[1])
            bad = bad_kind(index, args.bad_every)
            scene = index % len(scenes.visible)
            thermal = _stamped(scenes.bad[bad] if bad else scenes.thermal[scene], thermal_ns)
            visible = _stamped(scenes.visible[scene], visible_ns)
            if rng.random() < 0.5:
                thermal_pub.publish_raw(thermal)
                info_pub.publish_raw(_stamped(scenes.info, visible_ns))
                visible_pub.publish_raw(visible)
            else:
                info_pub.publish_raw(_stamped(scenes.info, visible_ns))
                visible_pub.publish_raw(visible)
                thermal_pub.publish_raw(thermal)
            frames.append({'index': index, 'thermal_ns': thermal_ns, 'rgb_ns': visible_ns,
                           'bad': bad, 'sent': time.time()})
        time.sleep(0.5)  # the last fragments leave before the participant goes
    finally:
        transport.close()
    Path(args.log).write_text(json.dumps({'frames': frames, 'published_late': late}))
    return 0


# --- the benchmark -------------------------------------------------------------------------------

def proc_status(pid: int):
    """(resident MiB, CPU seconds) of a process, or None once it is gone."""
    try:
        status = Path(f'/proc/{pid}/status').read_text()
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    rss = next(int(line.split()[1]) / 1024.0 for line in status.splitlines()
               if line.startswith('VmRSS:'))
    fields = stat[stat.rindex(')') + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    return rss, cpu


def memory_summary(samples, warmup_s: float):
    """
    Summarise memory samples: [(seconds since streaming began, RSS MiB)].

    Growth is sustained growth: the median RSS of the last quarter of the samples taken after
    the warm-up against the median of the first quarter (a leak moves both the medians and the
    slope; one frame's transient buffers move neither). The band (min..max) and the peak over
    that baseline are reported beside it, for what the process needs at its worst.
    """
    after = [(t, rss) for t, rss in samples if t >= warmup_s]
    empty = {'baseline_mib': None, 'end_mib': None, 'min_mib': None, 'max_mib': None,
             'growth_pct': None, 'peak_over_baseline_pct': None, 'slope_mib_per_min': None,
             'samples_after_warmup': len(after)}
    if len(after) < 4:
        return empty
    t, rss = (np.asarray(v, np.float64) for v in zip(*after))
    quarter = max(1, len(rss) // 4)
    baseline, end = float(np.median(rss[:quarter])), float(np.median(rss[-quarter:]))
    slope = float(np.polyfit(t, rss, 1)[0]) * 60.0 if np.ptp(t) > 0 else 0.0
    return {'baseline_mib': round(baseline, 1), 'end_mib': round(end, 1),
            'min_mib': round(float(rss.min()), 1), 'max_mib': round(float(rss.max()), 1),
            'growth_pct': round(100.0 * (end - baseline) / baseline, 2),
            'peak_over_baseline_pct': round(100.0 * (float(rss.max()) - baseline) / baseline,
                                            2),
            'slope_mib_per_min': round(slope, 3), 'samples_after_warmup': len(after)}


def run(args) -> dict:
    from sgdfuse_ros import messages
    from sgdfuse_ros.node.core import accounting_errors
    from sgdfuse_ros.transport.base import QosProfile
    from sgdfuse_ros.transport.dds import DdsTransport, localhost_config

    domain = args.domain_id if args.domain_id is not None else 100 + os.getpid() % 120
    env = dict(os.environ, CYCLONEDDS_URI=localhost_config(), PYTHONUNBUFFERED='1')
    env.pop('ROS_DOMAIN_ID', None)
    thermal_size, rgb_size = parse_size(args.thermal_size), parse_size(args.rgb_size)
    h = homography(thermal_size, rgb_size)
    frames = int(round(args.seconds * args.rate))
    # the node's statistics and the camera's log; removed when read (and, on an error, when
    # this process ends: TemporaryDirectory's finaliser)
    scratch = tempfile.TemporaryDirectory(prefix='bench_soak_')
    tmp = Path(scratch.name)
    stats_path, camera_log = tmp / 'stats.json', tmp / 'camera.json'
    received = []  # (rgb stamp ns, receive wall time)

    def on_fused(data, info):
        now = time.time()
        sec, nanosec = struct.unpack_from('<iI', data, 4)  # the header's stamp
        received.append((sec * 1_000_000_000 + nanosec, now))

    overrides = ['registration.homography=[' + ','.join(f'{v:.6g}' for v in h) + ']']
    overrides += args.overrides
    listener = DdsTransport(domain, NS, 'soak_listener', config_xml=localhost_config())
    processes, samples, load_start = [], [], os.getloadavg()
    node_output, node_rc = '', None
    try:
        fused_sub = listener.create_subscription(messages.FUSED_TOPIC, messages.IMAGE, on_fused,
                                                 QosProfile('reliable', 10), raw=True)
        node = start_live_node(fused_sub, NS, domain, stats_path, args.seconds + 300,
                               overrides, env, processes)
        camera = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), '--camera', '--domain-id',
             str(domain), '--frames', str(frames), '--rate', str(args.rate),
             '--thermal-size', args.thermal_size, '--rgb-size', args.rgb_size,
             '--bad-every', str(args.bad_every), '--seed', str(args.seed),
             '--log', str(camera_log)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(camera)
        began = None
        while camera.poll() is None:
            sample = proc_status(node.pid)
            if sample is None or node.poll() is not None:
                break
            now = time.monotonic()
            if began is None and received:
                began = now  # streaming reached the consumer: the clock of the warm-up
            samples.append((now, *sample))
            time.sleep(args.sample_period)
        camera_output, _ = camera.communicate(timeout=args.seconds * 3 + 300)
        if camera.returncode != 0:
            raise RuntimeError('the camera failed:\n' + camera_output)
        count, settle = -1, time.monotonic() + 10
        while count != len(received) and time.monotonic() < settle:  # the last pairs
            count = len(received)
            time.sleep(1.0)
        final_sample = proc_status(node.pid)
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
        node_output, _ = node.communicate(timeout=120)
        node_rc = node.returncode
    finally:
        stop_processes(processes)
        listener.close()
    load_end = os.getloadavg()
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else None
    log = json.loads(camera_log.read_text())
    scratch.cleanup()
    sent = log['frames']
    streaming_s = max(f['sent'] for f in sent) - min(f['sent'] for f in sent)
    latency = [(at - stamp * 1e-9) * 1000.0 for stamp, at in received]
    began = began if began is not None else (samples[0][0] if samples else 0.0)
    rss_series = [(round(t - began, 2), round(rss, 2)) for t, rss, _ in samples]
    cpu = [(t, c) for t, _, c in samples]
    cpu_pct = (100.0 * (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0])
               if len(cpu) > 1 and cpu[-1][0] > cpu[0][0] else None)
    memory = memory_summary(rss_series, args.warmup)
    memory['at_exit_mib'] = round(final_sample[0], 1) if final_sample else None
    bad_sent = {kind: sum(1 for f in sent if f['bad'] == kind) for kind in BAD_KINDS}
    node = {}
    checks = {'node_exit_clean': node_rc == 0 and stats is not None,
              'no_traceback': 'Traceback' not in node_output,
              'books_balance': False, 'rejections_are_broken_frames': False,
              'memory_growth_below_limit': memory['growth_pct'] is not None
              and memory['growth_pct'] < args.max_growth,
              'delivered_fused_images': len(received) > 0}
    if stats is not None:
        inputs = stats['inputs']
        problems = accounting_errors(stats)
        rejected = inputs['thermal']['rejected']
        node = {
            'received': {s: c['received'] for s, c in inputs.items()},
            'lost_in_transport': {'thermal': len(sent) - inputs['thermal']['received'],
                                  'rgb': len(sent) - inputs['rgb']['received']},
            'published_pairs': stats['output']['published'],
            'dropped': {s: {k: v for k, v in c['dropped'].items() if v}
                        for s, c in inputs.items()},
            'rejected': {s: {k: v for k, v in c['rejected'].items() if v}
                         for s, c in inputs.items()},
            'pending_at_exit': {s: c['pending'] for s, c in inputs.items()},
            'accounting_errors': problems,
            'recovered': stats['output'].get('recovered', {}),
            'pipeline_errors': stats['output']['pipeline_errors'],
            'latency_ms_last_window': stats['latency_ms'],
            'device': stats['device'],
        }
        checks['books_balance'] = not problems
        checks['rejections_are_broken_frames'] = (
            rejected['encoding'] <= bad_sent['encoding']
            and rejected['decode'] <= bad_sent['decode']
            and rejected['size'] == rejected['pipeline'] == 0
            and sum(inputs['rgb']['rejected'].values()) == 0
            and (sum(bad_sent.values()) == 0 or rejected['encoding'] + rejected['decode'] > 0))
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'command': 'python benchmarks/bench_soak.py ' + ' '.join(args.argv),
        'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(),
                    'load_average_start': load_start, 'load_average_end': load_end},
        'setup': {'thermal': f'{args.thermal_size} mono16', 'rgb': f'{args.rgb_size} bgr8',
                  'rate_hz': args.rate, 'seconds': args.seconds, 'frames': frames,
                  'homography': [round(v, 4) for v in h], 'overrides': overrides,
                  'bad_every': args.bad_every, 'warmup_s': args.warmup, 'domain_id': domain,
                  'max_growth_pct': args.max_growth,
                  'transport': 'Cyclone DDS, loopback, best-effort camera QoS (node default), '
                               'reliable output'},
        'camera': {'frames_sent': len(sent), 'streaming_s': round(streaming_s, 2),
                   'published_late': log['published_late'], 'broken_on_purpose': bad_sent},
        'delivered': {'fused': len(received),
                      'rate_hz': round(len(received) / streaming_s, 2) if streaming_s else 0.0,
                      'fraction_of_pairs': round(len(received) / max(len(sent), 1), 4)},
        'latency_ms': {'stamp_to_received': percentiles(latency, with_max=True)},
        'node': node,
        'node_cpu_pct': round(cpu_pct, 1) if cpu_pct is not None else None,
        'memory': memory,
        'rss_samples': rss_series,
        'checks': checks,
        'passed': all(checks.values()),
        'node_exit_code': node_rc,
        'node_output_tail': node_output.strip().splitlines()[-6:],
    }


def table(r: dict) -> str:
    s, d, m, node = r['setup'], r['delivered'], r['memory'], r['node']
    lat = r['latency_ms']['stamp_to_received']

    def fmt(value, unit=''):
        return '-' if value is None else f'{value}{unit}'

    rows = [
        ('setup', f"thermal {s['thermal']} + RGB {s['rgb']} @ {s['rate_hz']:g} Hz for "
                  f"{s['seconds']:g} s, homography thermal->RGB, device "
                  f"{node.get('device', '?')}, {r['machine']['cpus']} CPUs"),
        ('machine load average (1 min) start / end',
         f"{r['machine']['load_average_start'][0]:.1f} / "
         f"{r['machine']['load_average_end'][0]:.1f} (shared machine)"),
        ('camera frame pairs sent', f"{r['camera']['frames_sent']} in "
                                    f"{r['camera']['streaming_s']:.1f} s, broken on purpose "
                                    f"{json.dumps(r['camera']['broken_on_purpose'])}"),
        ('fused images delivered', f"{d['fused']} ({d['rate_hz']:.2f} Hz, "
                                   f"{100 * d['fraction_of_pairs']:.1f} % of pairs)"),
        ('latency stamp -> received p50 / p90 / p99 / max (ms)',
         f"{fmt(lat['p50'])} / {fmt(lat['p90'])} / {fmt(lat['p99'])} / {fmt(lat['max'])}"),
        ('node received thermal / rgb', ' / '.join(str(v) for v in
                                                   node.get('received', {}).values())),
        ('lost between camera and node', json.dumps(node.get('lost_in_transport'))),
        ('node drops (by reason)', json.dumps(node.get('dropped'))),
        ('node rejected (by reason)', json.dumps(node.get('rejected'))),
        ('books balance (received = published + dropped + rejected + pending)',
         'yes' if r['checks']['books_balance'] else f"NO {node.get('accounting_errors')}"),
        ('node RSS after warm-up: first / last quarter median (MiB)',
         f"{fmt(m['baseline_mib'])} / {fmt(m['end_mib'])} (band {fmt(m['min_mib'])} .. "
         f"{fmt(m['max_mib'])}, {m['samples_after_warmup']} samples)"),
        ('memory growth after warm-up', f"{fmt(m['growth_pct'], ' %')} (limit "
                                        f"{r['setup']['max_growth_pct']:g} %; slope "
                                        f"{fmt(m['slope_mib_per_min'])} MiB/min; peak "
                                        f"{fmt(m['peak_over_baseline_pct'], ' %')} over the "
                                        'baseline)'),
        ('node CPU', f"{fmt(r['node_cpu_pct'], ' %')} of one core"),
        ('checks', ', '.join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r['checks'].items())),
        ('result', 'PASSED' if r['passed'] else 'FAILED'),
    ]
    return metric_table(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    add_stream_options(parser, seconds=60.0)
    parser.add_argument('--thermal-size', default='640x512')
    parser.add_argument('--rgb-size', default='1280x720')
    parser.add_argument('--bad-every', type=int, default=150,
                        help='break every N-th thermal frame (0: never)')
    parser.add_argument('--warmup', type=float, default=15.0,
                        help='seconds of streaming before the memory baseline')
    parser.add_argument('--max-growth', type=float, default=5.0,
                        help='largest memory growth after warm-up, percent')
    parser.add_argument('--sample-period', type=float, default=1.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--name', default='soak_dds', help='results file name (no suffix)')
    parser.add_argument('--camera', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--frames', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--log', default=None, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.camera:
        return camera_main(args)
    if args.seconds <= 0 or args.rate <= 0:
        parser.error('--seconds and --rate must be positive')
    result = run(args)
    text = table(result)
    print(text)
    write_results(args.out / args.name, result,
                  '# Soak benchmark (camera -> sgdfuse live -> subscriber, Cyclone DDS)\n\n'
                  f"`{result['command']}`, {result['date']}\n\n" + text + '\n')
    return 0 if result['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
