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
Live benchmark: camera -> ``sgdfuse live`` -> subscriber, three processes over Cyclone DDS.

    python benchmarks/bench_live.py                      # 12 s at 30 Hz, 640x512
    python benchmarks/bench_live.py --seconds 30 --size 1280x720 --set refiner.steps=1

The synthetic camera (:mod:`sgdfuse_ros.transport.synthetic_camera`) publishes thermal (mono16)
and RGB
(bgr8) images plus camera info at ``--rate`` with +-3 ms stamp jitter; the node runs as its own
process (``sgdfuse live``, the shipped config plus ``--set`` overrides); this process subscribes
to ``fused/image`` (reliable) like a downstream detector. Everything stays on the loopback
interface, on a DDS domain of its own.

Reported:

- delivered rate: fused images received per second of camera streaming (and as % of pairs);
- latency ``stamp -> received``: receive time minus the fused image's header stamp (the RGB
  capture stamp), what a downstream node measures; ``publish -> received``: minus the moment the
  later image of the pair was published (both clocks are this machine's wall clock);
- the node's own accounting: drops by reason, rejected frames, its end-to-end and per-stage
  latency percentiles.

Results: ``results/live_dds.json`` and ``results/live_dds.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
import platform
import signal
import subprocess
import sys
import tempfile
import time

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the package, when not installed

from harness import (add_stream_options, metric_table, percentiles,  # noqa: E402
                     start_live_node, stop_processes, write_results)
from sgdfuse_ros import messages  # noqa: E402
from sgdfuse_ros.transport.base import QosProfile  # noqa: E402
from sgdfuse_ros.transport.dds import DdsTransport, localhost_config  # noqa: E402

NS = '/bench'


def run(args) -> dict:
    domain = args.domain_id if args.domain_id is not None else 100 + os.getpid() % 120
    env = dict(os.environ, CYCLONEDDS_URI=localhost_config(), PYTHONUNBUFFERED='1')
    frames = int(round(args.seconds * args.rate))
    tmp = Path(tempfile.mkdtemp(prefix='bench_live_'))
    stats_path, camera_log = tmp / 'stats.json', tmp / 'camera.json'
    received = []  # (stamp_ns, receive wall time)

    def on_fused(data, info):
        now = time.time()
        received.append((messages.stamp_nanoseconds(messages.deserialize(data, messages.IMAGE)),
                         now))

    listener = DdsTransport(domain, NS, 'bench_listener', config_xml=localhost_config())
    processes = []
    try:
        fused_sub = listener.create_subscription(messages.FUSED_TOPIC, messages.IMAGE, on_fused,
                                                 QosProfile('reliable', 10), raw=True)
        node = start_live_node(fused_sub, NS, domain, stats_path, args.seconds + 120,
                               args.overrides, env, processes)
        camera = subprocess.Popen(
            [sys.executable, '-m', 'sgdfuse_ros.transport.synthetic_camera', '--namespace', NS,
             '--domain-id', str(domain), '--frames', str(frames), '--rate', str(args.rate),
             '--size', args.size, '--jitter-ms', str(args.jitter_ms), '--wait-subscribers', '1',
             '--wait-timeout', '120', '--log', str(camera_log)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(camera)
        camera_output, _ = camera.communicate(timeout=args.seconds * 3 + 120)
        if camera.returncode != 0:
            raise RuntimeError('the camera failed:\n' + camera_output)
        time.sleep(1.0)  # the last pairs
        node.send_signal(signal.SIGINT)
        node_output, _ = node.communicate(timeout=60)
    finally:
        stop_processes(processes)
        listener.close()
    stats = json.loads(stats_path.read_text())
    log = json.loads(camera_log.read_text())
    by_visible = {f['visible_ns']: f for f in log['frames']}
    sent = log['frames']
    streaming_s = max(f['visible_sent'] for f in sent) - min(f['visible_sent'] for f in sent)
    from_stamp, from_publish = [], []
    for stamp_ns, at in received:
        from_stamp.append((at - stamp_ns * 1e-9) * 1000.0)
        frame = by_visible.get(stamp_ns)
        if frame is not None:
            from_publish.append((at - max(frame['thermal_sent'], frame['visible_sent'])) * 1000.0)
    inputs = stats['inputs']
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(),
                    'load_average_at_end': os.getloadavg()},
        'setup': {'size': args.size, 'rate_hz': args.rate, 'seconds': args.seconds,
                  'frames': frames, 'jitter_ms': args.jitter_ms, 'overrides': args.overrides,
                  'domain_id': domain, 'transport': 'Cyclone DDS, loopback, rosbags CDR',
                  'node_config': stats['config'], 'device': stats['device']},
        'camera': {'frames_sent': len(sent), 'streaming_s': round(streaming_s, 3),
                   'published_late': log['late_publishes']},
        'delivered': {'fused': len(received),
                      'rate_hz': round(len(received) / streaming_s, 2) if streaming_s else 0.0,
                      'fraction_of_pairs': round(len(received) / max(len(sent), 1), 4)},
        'latency_ms': {'stamp_to_received': percentiles(from_stamp),
                       'publish_to_received': percentiles(from_publish)},
        'node': {'received': {s: c['received'] for s, c in inputs.items()},
                 'published_pairs': stats['output']['published'],
                 'dropped': {s: {k: v for k, v in c['dropped'].items() if v}
                             for s, c in inputs.items()},
                 'rejected': {s: {k: v for k, v in c['rejected'].items() if v}
                              for s, c in inputs.items()},
                 'latency_ms': stats['latency_ms']},
        'node_output_tail': node_output.strip().splitlines()[-4:],
    }


def table(result: dict) -> str:
    d, lat, node = result['delivered'], result['latency_ms'], result['node']
    stage = node['latency_ms']

    def pct(entry, keys=('p50', 'p90', 'p99')):
        return ' / '.join('-' if entry.get(k) is None else f'{entry[k]:.1f}' for k in keys
                          if k in entry)

    rows = [
        ('setup', f"{result['setup']['size']} @ {result['setup']['rate_hz']:g} Hz, "
                  f"{result['setup']['seconds']:g} s, device {result['setup']['device']}, "
                  f"{result['machine']['cpus']} CPUs"),
        ('machine load average (1 min) at the end',
         f"{result['machine']['load_average_at_end'][0]:.1f} (shared machine)"),
        ('camera frame pairs sent', f"{result['camera']['frames_sent']} in "
                                    f"{result['camera']['streaming_s']:.1f} s"),
        ('fused images delivered', f"{d['fused']} ({d['rate_hz']:.1f} Hz, "
                                   f"{100 * d['fraction_of_pairs']:.1f} % of pairs)"),
        ('latency stamp -> received p50 / p90 / p99 (ms)', pct(lat['stamp_to_received'])),
        ('latency publish -> received p50 / p90 / p99 (ms)', pct(lat['publish_to_received'])),
        ('node end-to-end p50 / p90 (ms)', pct(stage.get('end_to_end', {}), ('p50', 'p90'))),
        ('node pipeline total p50 / p90 (ms)', pct(stage.get('total', {}), ('p50', 'p90'))),
        ('node received thermal / rgb', f"{node['received']['thermal']} / "
                                        f"{node['received']['rgb']}"),
        ('node drops thermal', json.dumps(node['dropped']['thermal']) or '{}'),
        ('node drops rgb', json.dumps(node['dropped']['rgb']) or '{}'),
        ('node rejected', json.dumps(node['rejected'])),
    ]
    return metric_table(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    add_stream_options(parser, seconds=12.0)
    parser.add_argument('--size', default='640x512')
    parser.add_argument('--jitter-ms', type=float, default=3.0)
    args = parser.parse_args(argv)
    result = run(args)
    text = table(result)
    print(text)
    write_results(args.out / 'live_dds', result,
                  '# Live DDS benchmark (camera -> sgdfuse live -> subscriber)\n\n'
                  f"`python benchmarks/bench_live.py {' '.join(argv or sys.argv[1:])}`, "
                  f"{result['date']}\n\n" + text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
