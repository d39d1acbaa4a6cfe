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
``sgdfuse corpus`` on a corpus of bags: ``--jobs 1``, ``--jobs 2`` and ``--ray auto``.

The corpus (at least 40 bags, made with ``sgdfuse make-bag`` from the test splits):
RoadScene pairs (500x329 and other sizes, "road" set) and MSRS pairs (128x128, day and night
bags apart), of mixed lengths (some repeated), plus two faults: a bag whose storage file is
truncated part-way and a bag that holds one camera only. A manifest tags every bag with its
dataset and light (MSRS names end in D or N; RoadScene is not split by light: ``mixed``).

Each mode runs the whole corpus from scratch (``--fresh``) into its own folder, as a separate
process (its start included), ``--repeat`` times (default 3), the modes in turn; reported per
run: wall time, bags/hour, pairs/s; from the medians of the wall times: speed-up and scaling
efficiency against ``--jobs 1`` (ideal: the cores) and Ray's overhead over ``--jobs 2`` (and
both per run); the peak
memory of a worker (largest ``ru_maxrss`` over the bags), and whether every bag's fused output
(SHA-256 of the messages written) is the same in all modes.

    nice -n 10 .venv/bin/python benchmarks/corpus.py --roadscene ../shared/data/roadscene \
        --msrs ../shared/data/msrs128

Writes ``results/corpus.json`` and ``results/corpus.md``, and copies the ``--jobs 2`` run's
corpus report (``report.md``, ``plots/``) to ``results/corpus_report/``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import command, package_env, write_results  # noqa: E402
from machine import describe  # noqa: E402
from sgdfuse_ros.bag.writer import BagWriter  # noqa: E402
from sgdfuse_ros.cli import main as cli  # noqa: E402
from sgdfuse_ros.cli.make_bag import THERMAL_INFO_TOPIC, THERMAL_TOPIC  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROAD_CHUNKS = (2, 3, 4, 5, 6, 8, 3, 4, 5, 6)      # pairs per RoadScene bag
MSRS_CHUNKS = (4, 6, 8, 10, 12, 16, 20, 24)       # pairs per MSRS bag


def _link_subset(source: Path, names, folder: Path) -> None:
    for sub in ('ir', 'vis'):
        (folder / sub).mkdir(parents=True)
        for name in names:
            os.symlink(source / sub / name, folder / sub / name)


def _make(folder: Path, out: Path, repeat: int, seed: int) -> None:
    assert cli(['make-bag', '--ir', str(folder / 'ir'), '--vis', str(folder / 'vis'), '--out',
                str(out), '--repeat', str(repeat), '--seed', str(seed), '--quiet']) == 0, out


def _chunks(names, sizes):
    i, k = 0, 0
    while i < len(names):
        size = sizes[k % len(sizes)]
        yield names[i:i + size]
        i += size
        k += 1


def build_corpus(root: Path, roadscene: Path, msrs: Path, msrs_bags: int) -> list:
    """Make the bags and return the manifest rows (bag, dataset, light, pairs)."""
    rows = []
    pairs = root / 'pairs'
    bags = root / 'bags'
    bags.mkdir(parents=True)
    road = json.loads((roadscene / 'split.json').read_text())['test']
    for n, chunk in enumerate(_chunks(road, ROAD_CHUNKS)):
        folder = pairs / f'road{n:02d}'
        _link_subset(roadscene, chunk, folder)
        repeat = 2 if n % 3 == 0 else 1
        _make(folder, bags / f'road{n:02d}', repeat, n)
        rows.append((f'bags/road{n:02d}', 'roadscene', 'mixed', len(chunk) * repeat))
    names = json.loads((msrs / 'split.json').read_text())['test']
    for light in ('D', 'N'):
        lit = [x for x in names if Path(x).stem.endswith(light)]
        made = 0
        for n, chunk in enumerate(_chunks(lit, MSRS_CHUNKS)):
            if made >= msrs_bags // 2:
                break
            name = f"msrs_{'day' if light == 'D' else 'night'}{n:02d}"
            _link_subset(msrs, chunk, pairs / name)
            _make(pairs / name, bags / name, 1, 100 + n)
            rows.append((f'bags/{name}', 'msrs', 'day' if light == 'D' else 'night',
                         len(chunk)))
            made += 1
    # faults: a bag truncated part-way (its storage file cut at 60 %), a bag of one camera
    shutil.copytree(bags / 'road01', bags / 'fault_truncated')
    db = next((bags / 'fault_truncated').glob('*.db3'))
    os.rename(db, db.with_name('fault_truncated.db3'))
    meta = bags / 'fault_truncated' / 'metadata.yaml'
    meta.write_text(meta.read_text().replace(db.name, 'fault_truncated.db3'))
    db = db.with_name('fault_truncated.db3')
    data = db.read_bytes()
    db.write_bytes(data[:int(len(data) * 0.6)])
    rows.append(('bags/fault_truncated', 'roadscene', 'mixed', None))
    _one_camera(bags / 'road02', bags / 'fault_one_camera')
    rows.append(('bags/fault_one_camera', 'roadscene', 'mixed', None))
    manifest = root / 'manifest.csv'
    manifest.write_text('bag,dataset,light\n' + ''.join(f'{b},{d},{light}\n'
                                                        for b, d, light, _ in rows))
    return rows


def _one_camera(source: Path, out: Path) -> None:
    """Copy the thermal camera's topic of ``source`` only (an RGB camera that never recorded)."""
    from rosbags.rosbag2 import Reader
    with Reader(source) as reader, BagWriter(out) as writer:
        for conn, log_ns, data in reader.messages():
            if conn.topic in (THERMAL_TOPIC, THERMAL_INFO_TOPIC):
                writer.write(conn.topic, log_ns, data, conn.msgtype)


def run_mode(name: str, argv: list, root: Path, out: Path) -> dict:
    env = package_env()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, '-m', 'sgdfuse_ros.cli', 'corpus', '--manifest',
                           str(root / 'manifest.csv'), '--out', str(out), '--fresh', '--quiet',
                           *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads((out / 'corpus.json').read_text())
    rows = report['bags']
    ran = [r for r in rows if r['status'] in ('ok', 'failed')]
    return {'mode': name, 'argv': argv, 'exit': done.returncode,
            'stderr_tail': done.stderr.strip().splitlines()[-2:],
            'wall_s': round(wall, 2), 'bags': len(rows),
            'ok': sum(1 for r in rows if r['status'] == 'ok'),
            'failed': sorted(Path(r['bag']).name for r in rows if r['status'] == 'failed'),
            'fused_pairs': report['totals']['fused'],
            'bags_per_hour': round(len(ran) * 3600.0 / wall, 1),
            'pairs_per_s': round(report['totals']['fused'] / wall, 2),
            'worker_peak_rss_mb': max((r.get('worker_peak_rss_mb') or 0) for r in rows),
            'workers': len({r.get('worker_pid') for r in rows if r.get('worker_pid')}),
            'load_1min_before': round(load_before, 2),
            'load_1min_after': round(os.getloadavg()[0], 2),
            'how': report['run']['how'],
            'digests': {Path(r['bag']).name: r['output_sha256'] for r in rows}}


def _ray_cli(*argv) -> None:
    """Run Ray's own command line (``ray start`` / ``ray stop``) with this package importable."""
    env = package_env()
    subprocess.run([str(Path(sys.executable).parent / 'ray'), *argv], env=env, check=True,
                   capture_output=True)


def _runs(results: list, mode: str) -> list:
    return [r for r in results if r['mode'] == mode]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--roadscene', type=Path, required=True)
    parser.add_argument('--msrs', type=Path, required=True)
    parser.add_argument('--msrs-bags', type=int, default=28,
                        help='MSRS bags (half day, half night)')
    parser.add_argument('--work', type=Path, default=Path('/tmp/sgdfuse_corpus_bench'))
    parser.add_argument('--modes', default='jobs1,jobs2,ray',
                        help='comma-separated: jobs1, jobs2, ray, chunks (--jobs 2 '
                        '--chunk-frames 4), ray_joined (--ray auto joining a Ray started '
                        'before the run)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='runs of each mode, in turn (jobs1, jobs2, ray, jobs1, ...); the '
                        'table gives every run and the medians')
    parser.add_argument('--out', type=Path, default=ROOT / 'benchmarks' / 'results')
    args = parser.parse_args()
    machine = describe(('torch', 'onnxruntime', 'opencv', 'ray', 'matplotlib'))
    machine['uptime_at_start'] = subprocess.run(['uptime'], capture_output=True,
                                                text=True).stdout.strip()
    if args.work.exists():
        shutil.rmtree(args.work)
    start = time.perf_counter()
    # absolute: the corpus links the data sets' images from elsewhere
    rows = build_corpus(args.work, args.roadscene.resolve(), args.msrs.resolve(), args.msrs_bags)
    made_s = time.perf_counter() - start
    print(f'corpus: {len(rows)} bags made in {made_s:.0f} s under {args.work}', file=sys.stderr)
    modes = {'jobs1': ['--jobs', '1'], 'jobs2': ['--jobs', '2'], 'ray': ['--ray', 'auto'],
             # not in the default table: bags of more than 4 pairs cut into chunk tasks (their
             # fused output must still be the same bytes as in the other modes)
             'chunks': ['--jobs', '2', '--chunk-frames', '4'],
             # not in the default table: --ray auto joining a local Ray started before the
             # run (`ray start --head`, its start not timed): Ray's cost without its own start
             'ray_joined': ['--ray', 'auto']}
    results = []
    names = args.modes.split(',')
    for run in range(1, args.repeat + 1):
        for name in names:
            if name == 'ray_joined':
                _ray_cli('start', '--head', '--num-cpus', '2', '--include-dashboard', 'false',
                         '--disable-usage-stats')
            try:
                result = run_mode(name, modes[name], args.work, args.work / f'out_{name}')
            finally:
                if name == 'ray_joined':
                    _ray_cli('stop')
            result['run'] = run
            print(f"{name} (run {run}): {result['wall_s']} s, {result['ok']} ok, failed "
                  f"{result['failed']}, load {result['load_1min_before']} -> "
                  f"{result['load_1min_after']}", file=sys.stderr)
            results.append(result)
    wall = {n: statistics.median(r['wall_s'] for r in _runs(results, n)) for n in names}
    summary = {}
    if 'jobs1' in wall and 'jobs2' in wall:
        speedups = [a['wall_s'] / b['wall_s'] for a, b in
                    zip(_runs(results, 'jobs1'), _runs(results, 'jobs2'))]
        summary['jobs2_speedup'] = round(wall['jobs1'] / wall['jobs2'], 3)  # of the medians
        summary['jobs2_speedup_per_run'] = [round(x, 3) for x in speedups]
        summary['jobs2_scaling_efficiency'] = round(summary['jobs2_speedup'] / 2, 3)  # 2 cores
    for ray_mode in ('ray', 'ray_joined'):
        if ray_mode in wall and 'jobs2' in wall:
            summary[f'{ray_mode}_overhead_vs_jobs2'] = round(
                wall[ray_mode] / wall['jobs2'] - 1.0, 3)
            summary[f'{ray_mode}_overhead_vs_jobs2_per_run'] = [
                round(a['wall_s'] / b['wall_s'] - 1.0, 3)
                for a, b in zip(_runs(results, ray_mode), _runs(results, 'jobs2'))]
    digests = [r['digests'] for r in results]
    same = [b for b in digests[0] if all(d.get(b) == digests[0][b] for d in digests)
            and digests[0][b]]
    summary['bags_with_identical_output_in_all_modes'] = len(same)
    summary['bags_with_output'] = sum(1 for v in digests[0].values() if v)
    machine['physical_cores'] = __import__('sgdfuse_ros.hardware', fromlist=['x']).physical_cores()
    machine['uptime_at_end'] = subprocess.run(['uptime'], capture_output=True,
                                              text=True).stdout.strip()
    corpus = {'bags': len(rows), 'work': str(args.work), 'made_s': round(made_s, 1),
              'manifest': [{'bag': b, 'dataset': d, 'light': light, 'pairs': p}
                           for b, d, light, p in rows]}
    report = {'command': command(), 'machine': machine, 'corpus': corpus,
              'modes': [{k: v for k, v in r.items() if k != 'digests'} for r in results],
              'median_wall_s': wall, 'summary': summary}
    lines = ['# sgdfuse corpus: --jobs 1, --jobs 2, --ray auto', '',
             f"`{report['command']}`", '',
             f'{len(rows)} bags ({sum(p or 0 for *_, p in rows)} pairs, two faulty bags); '
             f"{machine['cpu']}, {machine['physical_cores']} cores; load at the start "
             f"{machine['load_average_1min_at_start']}", '',
             f"- uptime at the start: `{machine['uptime_at_start']}`",
             f"- uptime at the end: `{machine['uptime_at_end']}`", '',
             '| mode | wall s | bags/hour | pairs/s | ok | failed | workers | worker peak RSS MB '
             '| load 1 min before -> after |', '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        lines.append(f"| {r['mode']} (run {r['run']}) | {r['wall_s']} | {r['bags_per_hour']} | "
                     f"{r['pairs_per_s']} | {r['ok']} | {len(r['failed'])} | {r['workers']} | "
                     f"{r['worker_peak_rss_mb']} | {r['load_1min_before']} -> "
                     f"{r['load_1min_after']} |")
    lines += ['', f'Medians over the {args.repeat} runs of each mode (wall s): '
              + ', '.join(f'{n} {wall[n]:.2f}' for n in names), '']
    lines += [f'- {k}: {v}' for k, v in summary.items()]
    write_results(args.out / 'corpus', report, '\n'.join(lines) + '\n', show=True)
    if 'jobs2' in wall:
        target = args.out / 'corpus_report'
        if target.exists():
            shutil.rmtree(target)
        (target / 'plots').mkdir(parents=True)
        source = args.work / 'out_jobs2'
        shutil.copy(source / 'report.md', target / 'report.md')
        shutil.copy(source / 'corpus.csv', target / 'corpus.csv')
        for plot in (source / 'plots').glob('*.png'):
            shutil.copy(plot, target / 'plots' / plot.name)
    return 0


if __name__ == '__main__':
    sys.exit(main())
