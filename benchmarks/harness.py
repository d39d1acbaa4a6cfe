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
What the benchmark scripts share besides the machine (``machine.py``), written once.

Options (:func:`add_stream_options` for the DDS runs, :func:`add_prev_option` /
:func:`prev_weights` for a row with earlier weights), the data split a quality script scores
(:func:`subset_pairs`), timing (:func:`timed`), summaries (:func:`percentiles`, :func:`wins`,
:func:`metric_table`),
waiting and cleaning up (:func:`wait_for`, :func:`stop_processes`) and the result files
(:func:`write_results`: ``NAME.json`` and ``NAME.md`` under ``results/``, :func:`command`).
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

RESULTS = Path(__file__).resolve().parent / 'results'
ROOT = Path(__file__).resolve().parent.parent  # the checkout: the package, when not installed


# --- options -------------------------------------------------------------------------------------

def add_stream_options(parser, seconds: float) -> None:
    """Add the options of a streamed DDS run: length, rate, node overrides, domain, results."""
    parser.add_argument('--seconds', type=float, default=seconds)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='NAME=VALUE', help='node parameter override (repeatable)')
    parser.add_argument('--domain-id', type=int, default=None)
    parser.add_argument('--out', type=Path, default=RESULTS)


def add_data_options(parser, subset: str = 'val', msrs: bool = False) -> None:
    """
    Add ``--data`` (RoadScene by default, or the msrs128 folder, then required) and ``--subset``.

    ``--subset``: ``val`` (the train pairs held out for validation) or ``test``
    (:func:`subset_pairs`).
    """
    if msrs:
        parser.add_argument('--data', type=Path, required=True, help='the msrs128 folder')
    else:
        from sgdfuse_ros.eval.datasets import default_data_dir
        parser.add_argument('--data', type=Path, default=default_data_dir(beside_checkout=True))
    parser.add_argument('--subset', default=subset, choices=('val', 'test'))


def require_data(data, prog: str) -> None:
    """Exit with one line when no RoadScene folder was given or found."""
    if data is None:
        sys.exit(f'{prog}: error: give --data or set SGDFUSE_DATA')


def add_prev_option(parser, what: str = '') -> None:
    """Add ``--prev DIR``: a folder with earlier ``first_stage.pt`` and ``refiner.pt``."""
    parser.add_argument('--prev', type=Path, default=None,
                        help=f'folder with the previous first_stage.pt and refiner.pt{what}')


def prev_weights(folder: Path) -> dict:
    """
    Return the config overrides that load the weights of ``--prev`` ``folder``.

    Scored as they were published: without the warm tint (``colour.warm_tint``), added later.
    """
    return {'first_stage.weights': str(Path(folder) / 'first_stage.pt'),
            'refiner.weights': str(Path(folder) / 'refiner.pt'), 'colour.warm_tint': 0.0}


# --- data ----------------------------------------------------------------------------------------

def subset_pairs(data: Path, subset: str, val_every: int = 14) -> list:
    """Return the ``test`` split's pairs, or (``val``) the train pairs held out for validation."""
    from sgdfuse_ros.eval.datasets import dataset_pairs
    from sgdfuse_ros.training.data import validation_pairs

    if subset == 'test':
        return dataset_pairs(data, 'test')
    return validation_pairs(data, val_every)


# --- summaries -----------------------------------------------------------------------------------

def percentiles(values, qs=(50, 90, 99), with_max: bool = False) -> dict:
    """Return ``{pNN: ms}`` (and ``max``), 2 decimals; ``None`` each when there are no values."""
    keys = [f'p{q}' for q in qs] + (['max'] if with_max else [])
    if not len(values):
        return dict.fromkeys(keys)
    from sgdfuse_ros.eval.scoring import percentile_summary
    return percentile_summary(values, keys, digits=2)


def wins(ours: dict, other: dict) -> tuple:
    """Return (metrics where ``ours`` is higher, metrics both rows have), headline metrics."""
    from sgdfuse_ros.eval.metrics import HEADLINE_METRICS

    shared = [m for m in HEADLINE_METRICS if m in other and m in ours]
    return sum(ours[m] > other[m] for m in shared), len(shared)


def timed(fn, frames: int, warmup: int, keys=('median', 'p90'), digits=None) -> tuple:
    """Call ``fn`` ``warmup`` times untimed, then ``frames`` times: its ms as ``keys``, a tuple."""
    from sgdfuse_ros.eval.scoring import percentile_summary

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    summary = percentile_summary(times, keys, digits=digits)
    return tuple(summary[k] for k in keys)


def metric_table(rows) -> str:
    """``[(metric, value), ...]`` -> a two-column markdown table, the metric column aligned."""
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'metric':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f'| {k:<{width}} | {v} |' for k, v in rows]
    return '\n'.join(lines)


# --- processes -----------------------------------------------------------------------------------

def wait_for(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out waiting for {what}')
        time.sleep(0.05)


def start_live_node(fused_sub, ns: str, domain: int, stats_path: Path, duration_s: float,
                    overrides, env: dict, processes: list):
    """
    Start ``sgdfuse live`` as its own process and wait until it publishes ``fused/image``.

    ``fused_sub``: this process's subscription to the node's ``fused/image`` (its publisher count
    says the node is up; 120 s at most). The node is appended to ``processes`` at once (for
    :func:`stop_processes`); ``RuntimeError`` with its output if it stopped while starting.
    """
    node_cmd = [sys.executable, '-m', 'sgdfuse_ros.cli', 'live', '--namespace', ns,
                '--domain-id', str(domain), '--status-period', '0',
                '--stats-json', str(stats_path), '--duration', str(duration_s)]
    for override in overrides:
        node_cmd += ['--set', override]
    # stopped with SIGINT later: its default action even where this script runs with it ignored
    node = subprocess.Popen(node_cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    processes.append(node)
    wait_for(lambda: fused_sub.publisher_count() > 0 or node.poll() is not None, 120,
             'the node')
    if node.poll() is not None:
        raise RuntimeError('the node stopped:\n' + node.stdout.read())
    return node


def stop_processes(processes) -> None:
    """Kill and reap every process of ``processes`` still running (a run's ``finally``)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- result files --------------------------------------------------------------------------------

def package_env(**extra) -> dict:
    """Return this environment (and ``extra``) with the checkout first on ``PYTHONPATH``."""
    paths = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + paths), **extra)


def command(argv=None) -> str:
    """Return the command line that ran this script (``python script args``)."""
    return ' '.join(['python'] + (sys.argv if argv is None else list(argv)))


def write_results(stem: Path, report: dict, markdown: str, indent: int = 1,
                  show: bool = False) -> Path:
    """
    Write ``STEM.json`` (``report``) and ``STEM.md`` (``markdown``), making the folder.

    ``show``: also print the markdown and the names of the two files.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    (stem.parent / f'{stem.name}.json').write_text(json.dumps(report, indent=indent) + '\n')
    (stem.parent / f'{stem.name}.md').write_text(markdown)
    if show:
        print()
        print(markdown)
        print(f'wrote {stem}.json and {stem}.md')
    return stem
