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
``sgdfuse corpus``: many bags, one report; on local worker processes or on Ray.

    sgdfuse corpus recordings/ --out eval/                       # every bag under recordings/
    sgdfuse corpus --manifest fleet.csv --out eval/ --jobs 2     # tags from the manifest
    sgdfuse corpus recordings/ --out eval_new/ --set refiner.steps=4 --baseline eval/
    sgdfuse corpus recordings/ --out eval/ --ray auto            # a local Ray, or the cluster

Each bag is replayed as ``sgdfuse replay`` does (:mod:`sgdfuse_ros.cli.corpus_run`); its
replay report is in ``OUT/bags/ID/report/`` (and its fused bag in ``OUT/bags/ID/fused`` with
``--write-bags``); the corpus report is ``OUT/corpus.json``, ``corpus.csv``, ``report.md`` and
``plots/`` (:mod:`sgdfuse_ros.bag.corpus_report`).
"""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path
import sys
import time

from . import corpus_chunks, corpus_run
from .guard import stop_request
from .options import add_camera_topics, add_config
from .outputs import check_apart, check_output_dir, config_inputs
from .values import float_range, int_at_least, int_in, threads as threads_value
from ..bag.corpus import compare, find_bags, read_manifest, read_report, run_key, summarise
from ..bag.corpus_report import write_report
from ..config import load_config
from ..errors import InputError
from ..hardware import physical_cores
from ..progress import Progress
from ..writing import is_write_failure, write_failure

#: the replay options a corpus passes on to every bag (and that make its key)
REPLAY_OPTIONS = ('config', 'overrides', 'thermal_topic', 'visible_topic', 'no_metrics',
                  'every_frame_prior', 'storage')


def add_arguments(parser) -> None:
    parser.add_argument('bags', nargs='*', metavar='BAG_OR_FOLDER',
                        help='bags (rosbag2 folders, .mcap or .db3 files) or folders searched '
                        'for bags')
    parser.add_argument('--manifest', metavar='FILE',
                        help='CSV with a header: a column bag (or path) naming one bag per row, '
                        'relative to the file; every other column is a tag (day/night, robot)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='corpus report folder (corpus.json, corpus.csv, report.md, plots/, '
                        'and bags/ID/ per bag)')
    parser.add_argument('--write-bags', action='store_true',
                        help='also keep each fused bag (OUT/bags/ID/fused); without it the '
                        'outputs are fused, counted and digested, not stored')
    parser.add_argument('--jobs', type=int_in(0, 1024), default=0, metavar='N',
                        help='local worker processes (default 0: the physical cores divided by '
                        '--threads)')
    parser.add_argument('--threads', type=threads_value, default=1, metavar='N',
                        help="CPU threads of each bag's pipeline (default 1; thread_policy "
                        'fixed, so that workers do not fight over cores)')
    parser.add_argument('--ray', metavar='auto|ADDRESS',
                        help='run the bags as Ray tasks: auto joins a running local Ray or '
                        'starts one here; ADDRESS joins that cluster (pip install '
                        'sgdfuse_ros[ray])')
    parser.add_argument('--gpu-fraction', type=float_range(0.0, 1.0), default=0.25,
                        metavar='F', help='with --ray, the GPU share of each bag when the '
                        'config runs on CUDA (default 0.25)')
    parser.add_argument('--chunk-frames', type=int_in(0, 10**9),
                        default=corpus_chunks.DEFAULT_CHUNK_FRAMES, metavar='N',
                        help='cut a bag of more than N pairs into chunks of N pairs, each its '
                        "own task (locally and on Ray), merged into the bag's one entry, "
                        'report and fused bag (default %(default)s; 0: one task per bag)')
    parser.add_argument('--retries', type=int_in(0, 10), default=1, metavar='N',
                        help='tries again a bag whose worker process died (default 1)')
    parser.add_argument('--baseline', metavar='REPORT',
                        help="a previous run's corpus.json (or its folder): per-bag deltas and "
                        'a verdict')
    parser.add_argument('--fresh', action='store_true',
                        help='replay every bag, even those an earlier run into --out has done '
                        'with the same config and weights')
    add_camera_topics(parser)
    add_config(parser)
    parser.add_argument('--no-metrics', action='store_true',
                        help='skip the per-frame fusion metrics (faster)')
    parser.add_argument('--every-frame-prior', action='store_true',
                        help='compute the semantic prior for every frame (prior.every_frame=true)')
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3',
                        help='storage of the fused bags with --write-bags (default sqlite3)')
    parser.add_argument('--limit', type=int_at_least(1), metavar='N',
                        help='only the first N bags (a quick look)')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


class CorpusProgress(Progress):
    """The bar over bags, with the pairs fused so far (reported by the workers)."""

    def __init__(self, total: int, quiet: bool):
        super().__init__(total, label='corpus', unit='bags', quiet=quiet)
        self.pairs = 0

    def line(self) -> str:
        elapsed = self.elapsed
        rate = self.pairs / elapsed if elapsed > 0 else 0.0
        return f'{super().line()} | {self.pairs} pairs fused, {rate:.1f} pairs/s'

    def frames(self, n: int) -> None:
        self.pairs += n
        self.update(0)


def _threads_overrides(args) -> list:
    given = {name for name, _ in args.overrides}
    extra = []
    if 'threads' not in given:
        extra.append(('threads', args.threads))
    if 'thread_policy' not in given:
        extra.append(('thread_policy', 'fixed'))
    return list(args.overrides) + extra


def main(args) -> int:
    if not args.bags and not args.manifest:
        raise InputError('name bags or folders of bags, or --manifest FILE')
    out = Path(args.out)
    overrides = _threads_overrides(args)
    config = load_config(args.config, dict(overrides))
    threads = int(config['threads']) or physical_cores()
    jobs = args.jobs or max(1, physical_cores() // threads)
    bags = find_bags(args.bags) if args.bags else []
    if args.manifest:
        bags += read_manifest(args.manifest)
        seen, unique = set(), []
        for bag in bags:
            if bag.real not in seen:
                seen.add(bag.real)
                unique.append(bag)
        bags = unique
    if args.limit:
        bags = bags[:args.limit]
    inputs = [('BAG_OR_FOLDER', p) for p in args.bags] + [('--manifest', args.manifest)]
    inputs += [('bag', b.path) for b in bags] + [('--baseline', args.baseline)]
    check_apart(inputs + config_inputs(args.config, config), [('--out', out)])
    check_output_dir(out, '--out', children=('bags', 'plots'))
    baseline = read_report(args.baseline) if args.baseline else None
    if args.ray and importlib.util.find_spec('ray') is None:
        raise InputError('--ray needs Ray, which is not installed here (pip install '
                         "'sgdfuse_ros[ray]', or pip install ray)")
    if args.ray and args.ray != 'auto' and ':' not in args.ray and '://' not in args.ray:
        raise InputError(f'--ray {args.ray!r}: expected auto or a cluster address '
                         f'(HOST:PORT, ray://HOST:PORT)')
    # a local Ray starts in the background while the bags are found and planned
    ray_session = corpus_run.RaySession(args.ray, jobs * threads) if args.ray else None
    ending_workers: list = []  # local workers, joined after the report is written
    try:
        return _run(args, out, overrides, config, threads, jobs, bags, baseline, ray_session,
                    ending_workers)
    finally:
        corpus_run.join_workers(ending_workers)
        if ray_session is not None:
            ray_session.close()
            ray_session.wait_closed()


def _run(args, out: Path, overrides: list, config: dict, threads: int, jobs: int, bags: list,
         baseline, ray_session, ending_workers: list) -> int:
    gpu = 0.0
    options = {name: getattr(args, name) for name in REPLAY_OPTIONS}
    options['overrides'] = overrides
    key = run_key(config, [(n, p) for n, p in config_inputs(args.config, config)
                           if n != '--config'],
                  dict(options, config=None, write_bags=args.write_bags))

    def say(text: str) -> None:
        if not args.quiet:
            print(f'corpus: {text}', file=sys.stderr)

    rows = {}
    tasks = []
    chunked = corpus_chunks.ChunkedBags()
    to_do = 0
    for bag in bags:
        done = None if args.fresh else corpus_run.read_entry(out, bag, key)
        if done is not None:
            rows[bag.id] = done
            continue
        to_do += 1
        task = corpus_run.make_task(out, bag, options, key, args.write_bags)
        parts = corpus_chunks.split(task, args.chunk_frames)
        tasks.extend(chunked.expect(parts, args.fresh) if len(parts) > 1 else parts)
    tasks.sort(key=lambda t: -_size(t['bag']))  # the longest first: no long bag at the end
    how = (f'--ray {args.ray}' if args.ray else f'{jobs} local worker process'
           f"{'es' if jobs > 1 else ''}, {threads} thread{'s' if threads > 1 else ''} each")
    chunks = sum(1 for t in tasks if t.get('chunk') is not None)
    say(f'{len(bags)} bags; {len(rows)} done by an earlier run with the same key {key}, '
        f'{to_do} to replay ({how})'
        + (f'; {chunks} chunk tasks of at most {args.chunk_frames} pairs' if chunks else ''))
    out.mkdir(parents=True, exist_ok=True)
    stop = stop_request().protect()  # from here a signal stops the bags, keeps the finished
    start = time.perf_counter()
    with CorpusProgress(to_do, args.quiet) as bar:
        def on_row(row: dict) -> None:
            if row.get('chunk') is not None:
                row = chunked.add(row)  # the bag's row once its chunks are all in
                if row is None:
                    return
            rows[row['id']] = row
            bar.update()
            if row['status'] == 'failed':
                bar.note(f"corpus: {Path(row['bag']).name} failed: {row['reason']}")

        for row in chunked.ready():  # chunks all done by an earlier run: merged now
            on_row(row)
        if tasks and args.ray:
            how, gpu = corpus_run.run_ray(tasks, ray_session, args.ray, threads,
                                          args.gpu_fraction, config['device'], bar.frames,
                                          on_row, stop, retries=args.retries)
        elif tasks:
            corpus_run.run_local(tasks, min(jobs, len(tasks)), bar.frames, on_row, stop,
                                 retries=args.retries, verbose=args.verbose,
                                 ending=ending_workers)
        ok = sum(1 for r in rows.values() if r['status'] == 'ok')
        bar.done(f'{ok} of {len(bags)} bags ok')
    wall = time.perf_counter() - start
    ordered = [rows.get(bag.id) or corpus_run.failed_row(
        corpus_run.make_task(out, bag, options, key, args.write_bags), 'not_run',
        'not started') for bag in bags]
    report = {'tool': 'sgdfuse corpus', 'key': key,
              'created': datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec='seconds'),
              'run': {'how': how, 'jobs': None if args.ray else jobs, 'ray': args.ray,
                      'threads_per_bag': threads, 'gpu_fraction': gpu or 0.0,
                      'write_bags': args.write_bags},
              'settings': {'config': args.config, 'overrides': [list(o) for o in overrides],
                           'device': config['device'], 'backend': config['backend'],
                           'prior.source': config['prior.source'],
                           'first_stage.type': config['first_stage.type'],
                           'refiner.steps': config['refiner.steps'],
                           'metrics': not args.no_metrics},
              'interrupted': stop.name if stop.requested else None,
              'bags': ordered}
    report.update(summarise(ordered, wall if tasks else None))
    if baseline is not None:
        report['comparison'] = compare(ordered, baseline)
    try:
        write_report(out, report)
    except Exception as err:  # noqa: B902
        if not is_write_failure(err):
            raise
        raise InputError(write_failure(err, out)) from None
    totals = report['totals']
    failed = [r for r in ordered if r['status'] == 'failed']
    say(f"{totals['fused']} pairs fused in {ok} bags; {len(failed)} failed; report: "
        f"{out / 'report.md'}")
    if baseline is not None:
        say(f"against {args.baseline}: {report['comparison']['verdict']}")
    if stop.requested:
        chunks = sum(1 for r in ordered if r['status'] != 'ok' for c in r.get('chunks') or ()
                     if c.get('status') == 'ok')
        raise stop.interrupted(f'{ok} of {len(bags)} bags done and kept'
                               + (f', and {chunks} chunks of the others' if chunks else '')
                               + f" (a rerun skips them); report: {out / 'report.md'}")
    if failed:
        print(f'sgdfuse corpus: {len(failed)} of {len(bags)} bags failed (reasons in '
              f"{out / 'report.md'}); the others are in the report", file=sys.stderr)
        return 1
    return 0


def _size(path: str) -> int:
    total = 0
    for item in [Path(path)] + (sorted(Path(path).glob('*')) if Path(path).is_dir() else []):
        try:
            if item.is_file():
                total += item.stat().st_size
        except OSError:
            pass
    return total
