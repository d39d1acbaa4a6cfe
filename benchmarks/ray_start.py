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
The start and stop of the local Ray that ``sgdfuse corpus --ray auto`` starts.

Each run is a fresh process that starts Ray as the command does
(``sgdfuse_ros.cli.corpus_run.start_ray('auto', CPUS)``), times it, and times ``ray.shutdown``;
the environment gives ``RAY_USAGE_STATS_ENABLED=1`` (Ray's own default) or ``0`` (the command's
default for a Ray it starts), the two in turn, ``--repeat`` times each. Reported: every run,
the medians and the means (Ray waits for its node in whole seconds: the starts fall into
steps). Needs no Ray running on the machine (the command would join it: refused here).

    python benchmarks/ray_start.py --repeat 10

Writes ``results/ray_start.json`` and ``results/ray_start.md``.
"""

import argparse
import json
from pathlib import Path
import statistics
import subprocess
import sys

from harness import command, package_env, RESULTS, ROOT, write_results
from machine import describe

CHILD = r"""
import json, sys, time
from sgdfuse_ros.cli.corpus_run import start_ray
t = time.perf_counter()
ray, how = start_ray('auto', int(sys.argv[1]))
started = time.perf_counter() - t
t = time.perf_counter()
ray.shutdown()
print(json.dumps({'how': how, 'init_s': started, 'shutdown_s': time.perf_counter() - t}))
"""


def one_start(usage_stats: str, cpus: int) -> dict:
    """Start and stop a local Ray in a fresh process; return its timings."""
    env = package_env(RAY_USAGE_STATS_ENABLED=usage_stats)
    done = subprocess.run([sys.executable, '-c', CHILD, str(cpus)], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result['how'] != 'started':
        raise SystemExit('ray_start.py: a Ray runs on this machine (joined, not started); '
                         'stop it first (ray stop)')
    return dict(result, usage_stats=usage_stats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--cpus', type=int, default=2)
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args()
    machine = describe(('ray',))
    runs = []
    for run in range(1, args.repeat + 1):
        for usage_stats in ('1', '0'):
            result = dict(one_start(usage_stats, args.cpus), run=run)
            print(f"usage stats {usage_stats} (run {run}): init {result['init_s']:.2f} s, "
                  f"shutdown {result['shutdown_s']:.2f} s", file=sys.stderr)
            runs.append(result)
    # Ray waits for its node's registration in whole seconds: starts fall into steps a second
    # apart, so the mean says more than the median when the steps are mixed
    medians = {s: {k: round(statistics.median(r[k] for r in runs if r['usage_stats'] == s), 2)
                   for k in ('init_s', 'shutdown_s')} for s in ('1', '0')}
    means = {s: {k: round(statistics.mean(r[k] for r in runs if r['usage_stats'] == s), 2)
                 for k in ('init_s', 'shutdown_s')} for s in ('1', '0')}
    report = {'command': command(), 'machine': machine, 'runs': runs, 'medians': medians,
              'means': means}
    lines = ['# The local Ray that `sgdfuse corpus --ray auto` starts: start and stop', '',
             f"`{report['command']}`", '',
             f"{machine.get('cpu', '?')}; load average at the start "
             f"{machine.get('load_average_1min_at_start', '?')}", '',
             '| RAY_USAGE_STATS_ENABLED | run | ray start s | ray.shutdown s |',
             '|---|---|---|---|']
    lines += [f"| {r['usage_stats']} | {r['run']} | {r['init_s']:.2f} | {r['shutdown_s']:.2f} |"
              for r in runs]
    lines += ['', 'Median (mean): ' + '; '.join(
        f"usage statistics {'on' if s == '1' else 'off'}: start {m['init_s']} s "
        f"({means[s]['init_s']} s), shutdown {m['shutdown_s']} s ({means[s]['shutdown_s']} s)"
        for s, m in medians.items())]
    write_results(args.out / 'ray_start', report, '\n'.join(lines) + '\n', show=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
