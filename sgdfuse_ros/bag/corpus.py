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
A corpus of bags: which bags, their tags, what a finished bag looks like, and the totals.

``sgdfuse corpus`` (:mod:`sgdfuse_ros.cli.corpus`) replays each bag as ``sgdfuse replay`` does;
this module holds what does not depend on how the bags were run:

- :func:`find_bags`, :func:`read_manifest`: the bags named on the command line (a bag, or a
  folder searched for bags) or in a manifest (CSV, one bag per row, other columns are tags).
- :func:`run_key`, :func:`bag_fingerprint`: a bag is done (skipped by a rerun) when its entry
  was made with the same key (config, weights, replay options) from the same bag files.
- :func:`bag_row`: one bag's row from its replay report; :func:`summarise`: totals, the worst
  bags by each headline metric, groups by tag; :func:`compare`: per-bag deltas against a
  previous run and the verdict line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from pathlib import Path
import re
from typing import Dict, Iterable, List, Optional, Sequence

from ..errors import InputError
from ..eval.metrics import HEADLINE_METRICS
from ..writing import file_digest

STORAGE_SUFFIXES = ('.db3', '.mcap')
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_REPORT_BYTES = 256 * 1024 * 1024
#: a metric moved by less than this fraction of its baseline value counts as unchanged
TOLERANCE = 0.002
#: how many bags the worst-bags lists name
WORST = 3


class CorpusBag:
    """One bag of the corpus: its path, a stable id (its output folder) and its tags."""

    def __init__(self, path, tags: Optional[Dict[str, str]] = None, row: int = 0):
        self.path = Path(path)
        self.tags = dict(tags or {})
        self.row = row  # manifest row (1-based) or 0
        real = os.path.realpath(os.fspath(self.path))
        name = self.path.stem if self.path.suffix in STORAGE_SUFFIXES else self.path.name
        safe = re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('.') or 'bag'
        self.id = f'{safe[:48]}-{hashlib.sha1(real.encode()).hexdigest()[:8]}'
        self.real = real

    def size(self) -> int:
        """Bytes of the bag's files (0 when it cannot be read)."""
        return sum(size for _, size, _ in _files(self.path))


def _files(path: Path):
    try:
        if path.is_file():
            info = path.stat()
            return [(path.name, info.st_size, info.st_mtime_ns)]
        out = []
        for child in sorted(path.iterdir()):
            if child.is_file():
                info = child.stat()
                out.append((child.name, info.st_size, info.st_mtime_ns))
        return out
    except OSError:
        return []


def bag_fingerprint(path) -> str:
    """Names, sizes and modification times of a bag's files: a changed bag is replayed again."""
    return hashlib.sha256(json.dumps(_files(Path(path))).encode()).hexdigest()[:16]


def is_bag(path: Path) -> bool:
    """Tell whether ``path`` is a rosbag2 folder (with metadata.yaml) or a storage file."""
    if path.is_file():
        return path.suffix in STORAGE_SUFFIXES
    if not path.is_dir():
        return False
    if (path / 'metadata.yaml').is_file():
        return True
    return False


def find_bags(paths: Sequence) -> List[CorpusBag]:
    """
    Return the bags named: each path is a bag, or a folder searched (depth first) for bags.

    A folder that is a bag is not searched further. A path that does not exist, or a folder
    holding no bag, is one :class:`InputError` line.
    """
    found: List[CorpusBag] = []
    seen = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise InputError(f'no such bag or folder: {path}')
        if is_bag(path):
            bags = [path]
        elif path.is_dir():
            bags = _search(path)
            if not bags:
                raise InputError(f'{path} holds no ROS 2 bag (a folder with metadata.yaml, or '
                                 f'a .db3 / .mcap file)')
        else:
            raise InputError(f'not a ROS 2 bag: {path} (expected a bag folder, a .mcap or .db3 '
                             f'file, or a folder holding bags)')
        for bag in bags:
            item = CorpusBag(bag)
            if item.real not in seen:
                seen.add(item.real)
                found.append(item)
    return found


def _search(folder: Path) -> List[Path]:
    out = []
    try:
        children = sorted(folder.iterdir())
    except OSError as err:
        raise InputError(f'cannot list {folder}: {err.strerror}') from None
    for child in children:
        if child.name.startswith('.'):
            continue  # scratch folders of a run in progress, hidden files
        if is_bag(child):
            out.append(child)
        elif child.is_dir() and not child.is_symlink():
            out.extend(_search(child))
    return out


def read_manifest(path) -> List[CorpusBag]:
    """
    Return the bags of a manifest: CSV (or tab-separated) with a header row.

    The column ``bag`` (or ``path``; else the first column) names the bag, relative paths from
    the manifest's folder; every other column is a tag (``light: day``, ``robot: r2``). A bag
    named twice is one :class:`InputError` line; a bag that does not exist is left to its replay
    (a failed bag, as a corrupt one).
    """
    path = Path(path)
    try:
        with path.open('rb') as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as err:
        raise InputError(f'cannot read the manifest {path}: {err.strerror}') from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise InputError(f'manifest {path} is larger than {MAX_MANIFEST_BYTES // 2**20} MB')
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError:
        raise InputError(f'manifest {path} is not UTF-8 text') from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith('#')]
    if not lines:
        raise InputError(f'manifest {path} is empty (a header row, then one bag per row)')
    delimiter = '\t' if '\t' in lines[0] else ','
    rows = list(csv.reader(io.StringIO('\n'.join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header) or len(set(header)) != len(header):
        raise InputError(f'manifest {path}: the header row needs distinct, non-empty column '
                         f'names, got {header}')
    column = next((header.index(n) for n in ('bag', 'path') if n in header), 0)
    bags, seen = [], {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f'manifest {path}, row {number}: {len(row)} columns, the header has '
                             f'{len(header)}')
        name = row[column].strip()
        if not name:
            raise InputError(f'manifest {path}, row {number}: no bag named')
        bag_path = Path(name) if os.path.isabs(name) else path.parent / name
        tags = {h: v.strip() for i, (h, v) in enumerate(zip(header, row)) if i != column}
        item = CorpusBag(bag_path, tags, number)
        if item.real in seen:
            raise InputError(f'manifest {path}: {name} is named twice (rows {seen[item.real]} '
                             f'and {number})')
        seen[item.real] = number
        bags.append(item)
    if not bags:
        raise InputError(f'manifest {path} names no bag')
    return bags


def run_key(config: dict, weights: Iterable, options: dict) -> str:
    """
    Return the key of a run's results: the config, the weights' content, the replay options.

    Two runs with the same key fuse every bag to the same output; a rerun skips the bags
    whose entry has it.
    """
    files = {}
    for name, path in weights:
        try:
            files[name] = file_digest(path)
        except OSError:
            files[name] = None  # not there: the replay says so, per bag
    text = json.dumps({'config': config, 'weights': files, 'options': options}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _finite(value) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def bag_row(bag: CorpusBag, result: Optional[dict], status: str, reason: Optional[str],
            **extra) -> dict:
    """
    One bag's row of the corpus report, from its replay result (None when none was made).

    ``status``: ``ok``, ``failed`` (``reason`` says why), ``interrupted`` or ``not_run``.
    """
    row = {'id': bag.id, 'bag': str(bag.path), 'tags': dict(bag.tags), 'status': status,
           'reason': reason, 'pairs': None, 'fused': None, 'failed': None,
           'pairs_per_s': None, 'wall_s': None, 'metrics': {}, 'output_sha256': None}
    if result is not None:
        pairs, thr = result['pairs'], result['throughput']
        means = (result.get('metrics') or {}).get('mean') or {}
        row.update({'pairs': pairs['matched'], 'fused': pairs['fused'],
                    'failed': pairs['failed'], 'pairs_per_s': _finite(thr.get('pairs_per_s')),
                    'wall_s': _finite(thr.get('wall_s')),
                    'metrics': {n: _finite(means.get(n)) for n in HEADLINE_METRICS
                                if n in means},
                    'output_sha256': result['output'].get('sha256'),
                    'read_error': result.get('read_error'),
                    'rejected': {label: sum(result['messages'][label]['rejected'].values())
                                 for label in ('thermal', 'rgb')}})
    row.update(extra)
    return row


def _mean(values) -> Optional[float]:
    good = [v for v in values if v is not None]
    return sum(good) / len(good) if good else None


def summarise(rows: List[dict], wall_s: Optional[float]) -> dict:
    """Totals, the worst bags by each headline metric, and the groups by tag."""
    ok = [r for r in rows if r['status'] == 'ok']
    by_status: Dict[str, int] = {}
    for r in rows:
        by_status[r['status']] = by_status.get(r['status'], 0) + 1
    fused = sum(r['fused'] or 0 for r in rows)
    totals = {'bags': len(rows), 'status': by_status,
              'resumed': sum(1 for r in rows if r.get('resumed')),
              'pairs': sum(r['pairs'] or 0 for r in rows), 'fused': fused,
              'failed_pairs': sum(r['failed'] or 0 for r in rows),
              'wall_s': wall_s,
              'bags_per_hour': (len([r for r in rows if r['status'] in ('ok', 'failed')
                                     and not r.get('resumed')]) * 3600.0 / wall_s
                                if wall_s else None),
              'pairs_per_s': (sum(r['fused'] or 0 for r in rows if not r.get('resumed'))
                              / wall_s if wall_s else None),
              'metrics': {n: _mean(r['metrics'].get(n) for r in ok) for n in HEADLINE_METRICS}}
    worst = {}
    for name in HEADLINE_METRICS:
        scored = sorted((r for r in ok if r['metrics'].get(name) is not None),
                        key=lambda r: r['metrics'][name])
        if scored:
            worst[name] = [{'id': r['id'], 'bag': r['bag'], 'value': r['metrics'][name]}
                           for r in scored[:WORST]]
    groups: Dict[str, Dict[str, dict]] = {}
    for column in sorted({k for r in rows for k in r['tags']}):
        values: Dict[str, List[dict]] = {}
        for r in rows:
            values.setdefault(r['tags'].get(column, ''), []).append(r)
        groups[column] = {
            value: {'bags': len(members),
                    'ok': sum(1 for m in members if m['status'] == 'ok'),
                    'fused': sum(m['fused'] or 0 for m in members),
                    'pairs_per_s': _mean(m['pairs_per_s'] for m in members
                                         if m['status'] == 'ok'),
                    'metrics': {n: _mean(m['metrics'].get(n) for m in members
                                         if m['status'] == 'ok') for n in HEADLINE_METRICS}}
            for value, members in sorted(values.items())}
    return {'totals': totals, 'worst': worst, 'groups': groups}


def read_report(path) -> dict:
    """Read a previous ``corpus.json`` (or the folder holding one), for ``--baseline``."""
    path = Path(path)
    if path.is_dir():
        path = path / 'corpus.json'
    try:
        with path.open('rb') as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as err:
        raise InputError(f'cannot read the baseline report {path}: {err.strerror}') from None
    try:
        report = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(f'baseline {path} is not a JSON corpus report ({err})') from None
    if not isinstance(report, dict) or report.get('tool') != 'sgdfuse corpus' or \
            not isinstance(report.get('bags'), list):
        raise InputError(f'baseline {path} is not a report of sgdfuse corpus (its corpus.json)')
    return report


def _vote(deltas: Dict[str, Optional[float]], before: Dict[str, Optional[float]]) -> str:
    better = worse = 0
    for name, delta in deltas.items():
        if delta is None:
            continue
        scale = max(abs(before.get(name) or 0.0), 1e-9)
        if delta > TOLERANCE * scale:
            better += 1
        elif delta < -TOLERANCE * scale:
            worse += 1
    if better > worse:
        return 'better'
    if worse > better:
        return 'worse'
    return 'unchanged'


def compare(rows: List[dict], baseline: dict) -> dict:
    """
    Per-bag deltas of the headline metrics and throughput against a previous run, and a verdict.

    Bags are matched by path. A bag is *better* when more headline metrics rose than fell (each
    by more than :data:`TOLERANCE` of its previous value; all headline metrics are
    higher-is-better), *worse* when more fell, else *unchanged*; a bag that is not ``ok`` in both
    runs is *not comparable*.
    """
    before = {}
    for r in baseline.get('bags', []):
        if isinstance(r, dict) and isinstance(r.get('bag'), str):
            before[os.path.realpath(r['bag'])] = r
    per_bag, counts = {}, {'better': [], 'worse': [], 'unchanged': [], 'not_comparable': []}
    for r in rows:
        old = before.get(os.path.realpath(r['bag']))
        if old is None or old.get('status') != 'ok' or r['status'] != 'ok':
            counts['not_comparable'].append(r['id'])
            per_bag[r['id']] = {'verdict': 'not_comparable',
                                'baseline_status': old.get('status') if old else None}
            continue
        old_metrics = old.get('metrics') or {}
        deltas = {n: (r['metrics'][n] - old_metrics[n]
                      if _finite(r['metrics'].get(n)) is not None
                      and _finite(old_metrics.get(n)) is not None else None)
                  for n in HEADLINE_METRICS}
        verdict = _vote(deltas, old_metrics)
        speed = (r['pairs_per_s'] - old['pairs_per_s']
                 if _finite(r.get('pairs_per_s')) is not None
                 and _finite(old.get('pairs_per_s')) is not None else None)
        per_bag[r['id']] = {'verdict': verdict, 'metrics': deltas, 'pairs_per_s': speed,
                            'same_output': r.get('output_sha256') == old.get('output_sha256')}
        counts[verdict].append(r['id'])
    compared = len(rows) - len(counts['not_comparable'])
    names = {r['id']: Path(r['bag']).name for r in rows}
    worse = [names[i] for i in counts['worse']]
    line = (f"better on {len(counts['better'])} of {compared} bags compared, worse on "
            f'{len(worse)}' + (f" ({', '.join(worse[:8])}{', ...' if len(worse) > 8 else ''})"
                               if worse else '')
            + f", unchanged on {len(counts['unchanged'])}")
    if counts['not_comparable']:
        line += f"; {len(counts['not_comparable'])} not comparable (not ok in both runs)"
    means = {}
    for name in HEADLINE_METRICS:
        values = [d['metrics'][name] for d in per_bag.values()
                  if d.get('metrics') and d['metrics'].get(name) is not None]
        means[name] = sum(values) / len(values) if values else None
    return {'baseline': {'key': baseline.get('key'), 'created': baseline.get('created')},
            'verdict': line, 'counts': {k: len(v) for k, v in counts.items()},
            'worse': counts['worse'], 'better': counts['better'], 'per_bag': per_bag,
            'mean_delta': means}
