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
Contention benchmark: how the pipeline slows down when other processes share the CPU.

    python benchmarks/bench_contention.py            # full run, about 6-9 minutes on 2 cores
    python benchmarks/bench_contention.py --quick    # smoke run, about 1-2 minutes

A fusion node never runs alone: the detector it feeds, the camera drivers and the planner share
its cores. Each pipeline variant runs in a process of its own (the thread pools of torch,
OpenMP, ONNX Runtime and OpenCV are per process, as in a node), built once and kept alive; for
each load condition the benchmark starts the co-running load, lets it run for a moment, then
asks each variant in turn to fuse ``--settle`` frames (not timed, so that the ``adaptive``
thread policy sees the new load, as a running node would; 2 for the other variants; at most
``--max-seconds``) and ``--frames`` timed frames (at most ``--max-seconds``, at least 3), and
stops the load. The whole matrix is kept within ``--budget`` seconds (a cell may use at most
half of the time left per remaining cell for its untimed and again for its timed frames).
Frames: four synthetic 640x512 scenes, thermal as mono16 14-bit and visible as bgr8 CDR
messages, timed end to end as in ``bench_pipeline.py`` (deserialise, fuse, serialise).

Variants (``--variants``): ``default`` (the shipped configuration: learned first stage +
refiner K=2, ``backend: auto`` = onnx on the CPU, ``thread_policy: adaptive``), ``torch`` (the
same on the torch backend), ``classical`` (Laplacian first stage, no refiner), the previous
behaviour for comparison in the same run, ``before-torch`` and ``before-onnx``
(``thread_policy: library``: the libraries' thread defaults, torch spin-waiting), and
``reference``: a plain OpenCV 4-level Laplacian-pyramid fusion of the same frames (no
sgdfuse_ros code), the fair yardstick: it loses about what the CPU share loses. The prior is the
thermal fallback (no SAM checkpoint here).

Loads (``--loads``, each 1 and 2 at a time, ``--counts``), started and stopped by the benchmark
and bounded in time (each exits on its own after ``--load-limit`` seconds):

- ``detector``: a torch process with its default threads running a 6-layer conv net on a
  640x384 image continuously (what a detector node beside the fusion node does);
- ``busy``: a pure-Python busy loop;
- ``memory``: a memory-heavy multi-process load like a C++ build job: it starts child
  processes one after another, each allocating and streaming through about 400 MiB.

Reported per variant and condition: per-frame median and p90 (ms), slowdown = median / the
variant's idle median, and the thread count the adaptive policy ended on. Then the live node
(:class:`~sgdfuse_ros.node.core.FusionNodeCore` over the in-memory transport, default
configuration) fed at 30 Hz for ``--live-seconds``, idle and beside one detector: delivered
rate and latency (output time minus the RGB stamp) p50/p99.

Results: a table on stdout, ``results/contention_cpu.json`` and ``.md`` (``--suffix``).
``--package-root DIR`` runs the sgdfuse_ros variants from another checkout (an older commit:
parameters it does not know are dropped, so use the ``before-*`` variants there).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
import platform
import select
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'
SIZE = (640, 512)

VARIANTS: Dict[str, dict] = {  # name -> config overrides (on top of the shipped defaults)
    'default': {},
    'torch': {'backend': 'torch'},
    'classical': {'first_stage.type': 'laplacian', 'refiner.steps': 0},
    'before-torch': {'backend': 'torch', 'thread_policy': 'library'},
    'before-onnx': {'backend': 'onnx', 'thread_policy': 'library'},
    'reference': None,  # plain OpenCV pyramid fusion
}
DESCRIPTIONS = {
    'default': 'default (learned + refiner K=2, backend auto, threads adaptive)',
    'torch': 'default on the torch backend',
    'classical': 'classical (Laplacian first stage)',
    'before-torch': 'default, torch, library thread defaults (before)',
    'before-onnx': 'default, onnx, library thread defaults (before)',
    'reference': 'plain OpenCV Laplacian pyramid (reference)',
}

DETECTOR = r"""
import sys, time
import torch
from torch import nn
end = time.monotonic() + float(sys.argv[1])
net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                    nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(),
                    nn.Conv2d(128, 128, 3, 1, 1), nn.ReLU(), nn.Conv2d(128, 16, 1)).eval()
x = torch.rand(1, 3, 384, 640)
with torch.inference_mode():
    while time.monotonic() < end:
        net(x)
"""
BUSY = r"""
import sys, time
end = time.monotonic() + float(sys.argv[1])
n = 0
while time.monotonic() < end:
    for _ in range(200000):
        n += 1
"""
MEMORY = r'''
import subprocess, sys, time
end = time.monotonic() + float(sys.argv[1])
child = """
import numpy as np
a = np.ones(50 << 20, np.float32)  # 200 MiB, touched
b = a * 2.0
for _ in range(3):
    np.add(a, b, out=b)
    a[::4096].sort()
"""
while time.monotonic() < end:
    subprocess.run([sys.executable, '-c', child], timeout=max(1.0, end - time.monotonic() + 5))
'''
LOADS = {'detector': DETECTOR, 'busy': BUSY, 'memory': MEMORY}


# --- co-running loads ----------------------------------------------------------------------------

def start_load(kind: str, count: int, limit_s: float) -> List[subprocess.Popen]:
    """``count`` processes of load ``kind``; each exits by itself after ``limit_s`` seconds."""
    return [subprocess.Popen([sys.executable, '-c', LOADS[kind], str(limit_s)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True) for _ in range(count)]


def stop_load(procs: List[subprocess.Popen]) -> None:
    """Stop the loads and their children (each load is its own process group)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- statistics ----------------------------------------------------------------------------------

def percentile(values: List[float], q: float) -> float:
    """Return the q-th percentile of values, linearly interpolated as numpy does."""
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: List[float]) -> dict:
    return {'median': round(percentile(values, 50), 2), 'p90': round(percentile(values, 90), 2),
            'frames': len(values)}


def slowdowns(results: dict) -> dict:
    """{variant: {condition: median / idle median}} from {variant: {condition: summary}}."""
    out = {}
    for variant, conditions in results.items():
        idle = conditions.get('idle', {}).get('median')
        out[variant] = {cond: round(s['median'] / idle, 2) if idle else None
                        for cond, s in conditions.items() if 'median' in s}
    return out


# --- worker processes ----------------------------------------------------------------------------

class Worker:
    """One variant in a process of its own, driven over stdin/stdout (one JSON line each)."""

    def __init__(self, variant: str, args):
        command = [sys.executable, str(Path(__file__).resolve()), '--worker', variant]
        if args.package_root:
            command += ['--package-root', args.package_root]
        self.variant = variant
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.info: dict = {}

    def wait_ready(self, timeout: float = 300.0) -> dict:
        self.info = self._reply(timeout)
        return self.info

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ''
        if not line:
            raise RuntimeError(f'worker {self.variant} did not answer (exit code '
                               f'{self.proc.poll()})')
        return json.loads(line)

    def ask(self, timeout: float = 600.0, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + '\n')
        self.proc.stdin.flush()
        return self._reply(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({'cmd': 'quit'}) + '\n')
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def reference_fusion(thermal_u8, visible_gray, levels: int = 4):
    """Plain OpenCV Laplacian-pyramid fusion: max-abs detail, mean base (the yardstick)."""
    import cv2
    import numpy as np

    ga = [thermal_u8.astype(np.float32)]
    gb = [visible_gray.astype(np.float32)]
    for _ in range(levels - 1):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
    out = 0.5 * (ga[-1] + gb[-1])
    for level in range(levels - 2, -1, -1):
        size = ga[level].shape[::-1]
        la = ga[level] - cv2.pyrUp(ga[level + 1], dstsize=size)
        lb = gb[level] - cv2.pyrUp(gb[level + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + np.where(np.abs(la) >= np.abs(lb), la, lb)
    return np.clip(out, 0, 255).astype(np.uint8)


def worker_main(variant: str, package_root: Optional[str]) -> int:
    """Build the variant, warm it up, then time frames on request (stdout: JSON lines only)."""
    out = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol
    if package_root:
        sys.path.insert(0, str(Path(package_root).resolve()))
    sys.path.insert(1, str(HERE))
    sys.path.insert(2, str(HERE.parent))
    if variant == 'live':
        return live_worker(out)
    import bench_pipeline as bench  # noqa: E402  (benchmarks/, after the package root)

    messages = bench.input_messages(SIZE)
    if VARIANTS[variant] is None:
        import cv2
        from sgdfuse_ros.messages import deserialize, IMAGE, image_from_msg
        frames = []
        for thermal_bytes, visible_bytes in messages:
            thermal, _ = image_from_msg(deserialize(thermal_bytes, IMAGE))
            visible, _ = image_from_msg(deserialize(visible_bytes, IMAGE))
            thermal8 = cv2.normalize(thermal, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
            frames.append((thermal8, cv2.cvtColor(visible, cv2.COLOR_BGR2GRAY)))

        def one(i: int) -> float:
            start = time.perf_counter()
            reference_fusion(*frames[i % len(frames)])
            return (time.perf_counter() - start) * 1e3
        stats = dict
    else:
        pipeline = build_variant(variant)

        def one(i: int) -> float:
            return bench.fuse_once(pipeline, *messages[i % len(messages)], stamp=i / 30.0)['e2e']

        def stats() -> dict:
            compute = getattr(pipeline, 'compute_stats', None)
            return compute() if callable(compute) else {'backend': pipeline.config['backend']}
    for i in range(3):
        one(i)
    out.write(json.dumps({'ready': variant, 'compute': stats()}) + '\n')
    frame = 3
    for line in sys.stdin:
        command = json.loads(line)
        if command.get('cmd') != 'run':
            break
        began = time.perf_counter()
        for _ in range(command['settle']):
            one(frame)
            frame += 1
            if time.perf_counter() - began > command['max_s']:
                break
        times: List[float] = []
        began = time.perf_counter()
        while len(times) < command['frames']:
            times.append(one(frame))
            frame += 1
            if time.perf_counter() - began > command['max_s'] and len(times) >= 3:
                break
        out.write(json.dumps({'ms': times, 'compute': stats()}) + '\n')
    return 0


def variant_config(overrides: dict) -> dict:
    """Return the shipped defaults + ``overrides`` (unknown ones dropped: older checkouts)."""
    from sgdfuse_ros.config import load_config
    from sgdfuse_ros.parameters import SPECS

    known = {k: v for k, v in overrides.items() if k in SPECS}
    choices = SPECS['backend'].choices or ()
    if known.get('backend') not in (None,) + tuple(choices):
        known.pop('backend')
    known.update({'prior.source': 'thermal', 'device': 'cpu'})
    return load_config(overrides=known)


def build_variant(variant: str):
    from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline

    return FusionPipeline(variant_config(VARIANTS[variant]))


def live_worker(out) -> int:
    """Run the node core over the in-memory transport, fed at the requested rate."""
    import threading

    import numpy as np
    from sgdfuse_ros.node.core import FusionNodeCore
    from sgdfuse_ros.messages import FUSED_TOPIC, IMAGE, INPUT_TOPICS, OVERLAY_TOPIC
    from sgdfuse_ros.transport.memory import MemoryTransport
    from sgdfuse_ros.transport.synthetic_camera import SyntheticCamera

    config = variant_config({})
    camera = SyntheticCamera(*SIZE)
    transport = MemoryTransport('/', 'fusion_node')
    node = FusionNodeCore(transport, config)
    received: List[tuple] = []
    lock = threading.Lock()

    def on_fused(msg) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with lock:
            received.append((time.time(), stamp))
        for publisher in transport.publishers.get(transport.resolve_topic_name(FUSED_TOPIC),
                                                  ()):
            publisher.sent.clear()  # the in-memory transport keeps what was sent: not here

    from sgdfuse_ros.transport.base import RELIABLE
    transport.create_subscription(FUSED_TOPIC, IMAGE, on_fused, RELIABLE)
    node.configure()
    node.activate()
    out.write(json.dumps({'ready': 'live', 'compute': node.pipeline.compute_stats()
                          if hasattr(node.pipeline, 'compute_stats') else {}}) + '\n')

    def feed(seconds: float, rate: float) -> int:
        period, start, index = 1.0 / rate, time.monotonic(), 0
        while True:
            due = start + index * period
            if due - start >= seconds:
                return index
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now_ns = time.time_ns()  # what a camera driver does: stamp, wrap, publish
            transport.publish(INPUT_TOPICS['thermal'], camera.thermal_msg(index, now_ns))
            transport.publish(INPUT_TOPICS['visible'], camera.visible_msg(index, now_ns))
            for publisher in transport.publishers.get(
                    transport.resolve_topic_name(OVERLAY_TOPIC), ()):
                publisher.sent.clear()
            index += 1

    for line in sys.stdin:
        command = json.loads(line)
        if command.get('cmd') != 'run':
            break
        feed(command['settle_s'], command['rate'])
        node.wait_idle(5.0)
        with lock:
            received.clear()
        began = time.time()
        sent = feed(command['seconds'], command['rate'])
        node.wait_idle(5.0)
        with lock:
            got = list(received)
        for publishers in transport.publishers.values():
            for publisher in publishers:
                publisher.sent.clear()
        latency = [(t - s) * 1e3 for t, s in got]
        span = command['seconds']
        out.write(json.dumps({
            'sent': sent, 'delivered': len(got), 'input_hz': command['rate'],
            'delivered_hz': round(len(got) / span, 2),
            'latency_ms': {'p50': round(float(np.percentile(latency, 50)), 1) if got else None,
                           'p99': round(float(np.percentile(latency, 99)), 1) if got else None},
            'began': began,
            'compute': node.pipeline.compute_stats()
            if hasattr(node.pipeline, 'compute_stats') else {}}) + '\n')
    node.shutdown()
    return 0


# --- the run -------------------------------------------------------------------------------------

def conditions(loads: List[str], counts: List[int]) -> List[tuple]:
    return [('idle', None, 0)] + [(f'{kind} x{n}', kind, n) for kind in loads for n in counts]


def machine() -> dict:
    sys.path.insert(0, str(HERE))
    from machine import cpu_model

    info = {'cpu': cpu_model('unknown'), 'logical_cpus': os.cpu_count(),
            'python': platform.python_version(),
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'load_average_1min_at_start': round(os.getloadavg()[0], 2)}
    from importlib import metadata
    for name, dist in (('torch', 'torch'), ('onnxruntime', 'onnxruntime-gpu'),
                       ('opencv', 'opencv-python-headless')):
        try:
            info[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[name] = None
    try:
        info['git_commit'] = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=HERE,
                                            capture_output=True, text=True,
                                            timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info['git_commit'] = None
    return info


def package_commit(root: str) -> Optional[str]:
    """Return the short commit of the ``--package-root`` checkout (None where unknown)."""
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root,
                              capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def settle_frames(worker: Worker, args) -> int:
    """Untimed frames before timing: ``--settle`` where a thread tuner adapts, else 2."""
    if worker.variant == 'reference':
        return 0
    adaptive = (worker.info.get('compute') or {}).get('thread_policy') == 'adaptive'
    return args.settle if adaptive else min(2, args.settle)


def run(args) -> dict:
    variants = [v for v in args.variants.split(',') if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)} "
                         f"(known: {', '.join(VARIANTS)})")
    loads = [k for k in args.loads.split(',') if k]
    if any(k not in LOADS for k in loads):
        raise SystemExit(f"--loads: one of {', '.join(LOADS)}")
    counts = [int(c) for c in args.counts.split(',') if c]
    report = {'machine': machine(), 'command': 'python benchmarks/bench_contention.py '
              + ' '.join(sys.argv[1:]), 'size': list(SIZE), 'frames': args.frames,
              'settle': args.settle, 'results': {}, 'compute': {}, 'live': {}}
    if args.package_root:
        report['package_root'] = str(args.package_root)
        report['machine']['package_commit'] = package_commit(args.package_root)
    began = time.monotonic()
    workers = [Worker(v, args) for v in variants]
    active: List[subprocess.Popen] = []
    try:
        for worker in workers:
            report['compute'][worker.variant] = {'start': worker.wait_ready().get('compute')}
            report['results'][worker.variant] = {}
        cells = len(conditions(loads, counts)) * len(workers)
        for name, kind, count in conditions(loads, counts):
            if kind:
                active = start_load(kind, count, args.load_limit)
                time.sleep(args.load_warmup)
            load_avg = round(os.getloadavg()[0], 2)
            for worker in workers:
                frames = args.frames * (3 if worker.variant == 'reference' else 1)
                # the matrix must end within --budget seconds: a slow cell gets fewer frames
                left = max(1.0, args.budget - (time.monotonic() - began))
                max_s = min(args.max_seconds, 0.5 * left / max(1, cells))
                cells -= 1
                reply = worker.ask(cmd='run', frames=frames, settle=settle_frames(worker, args),
                                   max_s=max_s, timeout=4 * max_s + 120.0)
                report['results'][worker.variant][name] = dict(summary(reply['ms']),
                                                               load_average=load_avg)
                report['compute'][worker.variant][name] = reply.get('compute')
                median = report['results'][worker.variant][name]['median']
                print(f'  {name:<12} {worker.variant:<13} median {median:7.1f} ms  '
                      f'({time.monotonic() - began:.0f} s)', flush=True)
            stop_load(active)
            active = []
        for worker in workers:
            worker.close()
        workers = []
        if args.live_seconds > 0:
            report['live'] = run_live(args)
    finally:
        stop_load(active)
        for worker in workers:
            worker.close()
    report['slowdown'] = slowdowns(report['results'])
    report['wall_s'] = round(time.monotonic() - began, 1)
    report['machine']['load_average_1min_at_end'] = round(os.getloadavg()[0], 2)
    return report


def run_live(args) -> dict:
    live = {}
    worker = Worker('live', args)
    active: List[subprocess.Popen] = []
    try:
        worker.wait_ready()
        for name, kind, count in (('idle', None, 0), ('detector x1', 'detector', 1)):
            if kind:
                active = start_load(kind, count, args.load_limit)
                time.sleep(args.load_warmup)
            live[name] = worker.ask(cmd='run', seconds=args.live_seconds, rate=30.0,
                                    settle_s=args.settle_seconds)
            print(f"  live {name:<12} {live[name]['delivered_hz']:.1f} Hz delivered, latency "
                  f"p50 {live[name]['latency_ms']['p50']} ms", flush=True)
            stop_load(active)
            active = []
    finally:
        stop_load(active)
        worker.close()
    return live


def table(report: dict) -> str:
    results, slow = report['results'], report['slowdown']
    names = list(next(iter(results.values())).keys()) if results else []
    lines = ['| variant | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    for variant, conditions_ in results.items():
        cells = []
        for name in names:
            s = conditions_.get(name)
            if not s:
                cells.append('-')
                continue
            ratio = slow[variant].get(name)
            cells.append(f"{s['median']:.1f} / {s['p90']:.1f}" +
                         ('' if name == 'idle' or ratio is None else f' (**{ratio:.2f}x**)'))
        lines.append(f'| {DESCRIPTIONS.get(variant, variant)} | ' + ' | '.join(cells) + ' |')
    threads = []
    for variant, per in report.get('compute', {}).items():
        used = {name: (c or {}).get('threads') for name, c in per.items() if name != 'start'}
        if any(v not in (None, 'library default') for v in used.values()):
            threads.append(f'{variant}: ' + ', '.join(f'{k} {v}' for k, v in used.items()))
    out = '\n'.join(lines)
    if threads:
        out += '\n\nThreads in use after each condition: ' + '; '.join(threads) + '.'
    if report.get('live'):
        out += ('\n\n| live node, 30 Hz input | delivered (Hz) | latency p50 (ms) | '
                'latency p99 (ms) | threads |\n|---|---|---|---|---|')
        for name, r in report['live'].items():
            out += (f"\n| {name} | {r['delivered_hz']:.1f} | {r['latency_ms']['p50']} | "
                    f"{r['latency_ms']['p99']} | {(r.get('compute') or {}).get('threads', '-')} |")
    return out


def write(report: dict, out_dir: Path, suffix: str) -> Path:
    sys.path.insert(0, str(HERE))
    from harness import write_results

    name = 'contention_cpu' + (f'_{suffix}' if suffix else '')
    m = report['machine']
    head = (f"# Contention benchmark ({SIZE[0]}x{SIZE[1]}, cpu)\n\n{m['date']}; {m['cpu']} "
            f"({m['logical_cpus']} logical CPUs); torch {m['torch']}, onnxruntime "
            f"{m['onnxruntime']}; load average {m['load_average_1min_at_start']} at start, "
            f"{m['load_average_1min_at_end']} at the end; commit {m['git_commit']}"
            + (f" (sgdfuse_ros from commit {m['package_commit']})" if m.get('package_commit')
               else '') + '; '
            f"{report['wall_s']:.0f} s.\n\nCommand: `{report['command']}`\n\n"
            f"End-to-end ms per frame, **median / p90**, {report['frames']} timed frames per "
            f"cell after {report['settle']} untimed ones under the same load (2 for variants "
            'without the adaptive thread policy; the reference: 3x the frames, none untimed); '
            'in brackets the slowdown against the same variant idle.\n\n')
    write_results(out_dir / name, report, head + table(report) + '\n')
    return out_dir / f'{name}.md'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: fewer frames, variants, loads (1-2 minutes)')
    parser.add_argument('--variants', default=None,
                        help=f"comma list of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument('--loads', default=None, help='comma list of detector,busy,memory')
    parser.add_argument('--counts', default=None, help='co-runners at a time (default 1,2)')
    parser.add_argument('--frames', type=int, default=None, help='timed frames per cell')
    parser.add_argument('--settle', type=int, default=None, help='untimed frames per cell')
    parser.add_argument('--max-seconds', type=float, default=None, help='timed seconds per cell')
    parser.add_argument('--budget', type=float, default=None,
                        help='seconds for all conditions (cells get fewer frames to fit; '
                             'the live part comes on top)')
    parser.add_argument('--load-warmup', type=float, default=None,
                        help='seconds between starting a load and timing')
    parser.add_argument('--load-limit', type=float, default=180.0,
                        help='each load process exits by itself after this many seconds')
    parser.add_argument('--live-seconds', type=float, default=None,
                        help='seconds of 30 Hz input per live condition (0: no live part)')
    parser.add_argument('--settle-seconds', type=float, default=None,
                        help='seconds of input before the live measurement starts')
    parser.add_argument('--package-root', default=None,
                        help='import sgdfuse_ros from this checkout instead (workers only)')
    parser.add_argument('--suffix', default='')
    parser.add_argument('--out', default=str(RESULTS))
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.package_root)
    quick = args.quick
    defaults = {'variants': 'default,classical,reference' if quick else ','.join(VARIANTS),
                'loads': 'detector,busy' if quick else 'detector,busy,memory',
                'counts': '1' if quick else '1,2', 'frames': 8 if quick else 20,
                'settle': 8 if quick else 12, 'max_seconds': 6.0 if quick else 10.0,
                'load_warmup': 2.0 if quick else 3.0, 'budget': 70.0 if quick else 420.0,
                'live_seconds': 6.0 if quick else 12.0,
                'settle_seconds': 2.0 if quick else 4.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.package_root and not (Path(args.package_root) / 'sgdfuse_ros').is_dir():
        print(f'--package-root {args.package_root}: no sgdfuse_ros package there',
              file=sys.stderr)
        return 2
    report = run(args)
    path = write(report, Path(args.out), args.suffix)
    print()
    print(table(report))
    print(f'\nwritten: {path} (+ .json)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
