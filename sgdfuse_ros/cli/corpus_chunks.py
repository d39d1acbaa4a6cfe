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
``sgdfuse corpus --chunk-frames N``: a long bag as several tasks, merged into its one entry.

:func:`split` plans a bag's chunks from the pair count its metadata promises
(:func:`sgdfuse_ros.bag.chunks.plan`); each chunk runs as a task like a bag
(:func:`sgdfuse_ros.cli.corpus_run.fuse_chunk`), locally or on Ray. :class:`ChunkedBags`, in the
command's process, gathers the chunks' rows and, once a bag's chunks are all in, merges their
parts (:func:`merge`): one replay report (metrics over all frames), one output digest and, with
``--write-bags``, one fused bag, the same bytes as the whole bag's replay. The bag's entry is
then saved as an unchunked bag's is, and its chunk parts are removed.

Resume is per chunk: a chunk that finished keeps its part and entry until its bag is merged, so
a run that stops (Ctrl-C, a worker lost for good) leaves the finished chunks to the rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import time
from typing import Dict, List, Optional

from . import corpus_run
from .outputs import ReplacedFiles, ReplacedPath
from .replay import REPORT_FILES
from .. import writing
from ..bag.chunks import copy_messages, load_part, merged_report, plan
from ..bag.corpus import bag_fingerprint, bag_row, CorpusBag
from ..bag.reader import choose_topics, open_bag, recorded_messages
from ..bag.writer import BagWriter, NullWriter

#: default --chunk-frames: a bag of up to this many pairs is one task
DEFAULT_CHUNK_FRAMES = 1000


def expected_pairs(task: dict) -> int:
    """Return the pairs a bag's metadata promises (its cameras' fewer messages); 0: unknown."""
    options = task['options']
    try:
        with open_bag(task['bag']) as bag:
            topics = choose_topics(bag, options.get('thermal_topic'),
                                   options.get('visible_topic'), None)
            return max(0, min(topics.thermal.count, topics.visible.count))
    except Exception:  # noqa: B902 - a bag that cannot be opened is one task, which says why
        return 0


def split(task: dict, chunk_frames: int) -> List[dict]:
    """
    Return the tasks of one bag: itself, or one per chunk of ``chunk_frames`` pairs.

    A bag whose metadata records at most ``chunk_frames`` messages in all is one task without
    being opened (it cannot pair more); the others are opened to count their cameras' messages.
    """
    if chunk_frames <= 0:
        return [task]
    recorded = recorded_messages(task['bag'])
    if recorded is not None and recorded <= chunk_frames:
        return [task]
    chunks = plan(expected_pairs(task), chunk_frames)
    if len(chunks) == 1:
        return [task]
    return [dict(task, chunk={'index': k, 'count': len(chunks), 'first': first, 'end': end})
            for k, (first, end) in enumerate(chunks)]


def merge(task: dict, parts: List[dict], rows: List[dict]) -> dict:
    """
    Merge a bag's chunks' parts: its report, output (digest, fused bag) and entry; its row.

    Ends as ``sgdfuse replay`` ends: a bag unreadable part-way, with no pair, or whose pairs all
    failed is ``failed`` with the reason (its report written, the pairs before the damage
    scored).
    """
    bag = CorpusBag(task['bag'], task['tags'], task['row'])
    folder = Path(task['folder'])
    write_bag = task['write_bag']
    out_path = folder / 'fused'
    report = merged_report(parts, str(out_path) if write_bag else None)
    new_report = ReplacedFiles(folder / 'report', REPORT_FILES, 'replay')
    new_bag = ReplacedPath(out_path) if write_bag else None
    replacements = [r for r in (new_bag, new_report) if r is not None]
    try:
        writer = (BagWriter(new_bag.path, task['options'].get('storage') or 'sqlite3', 8, False,
                            parts[-1]['custom']) if write_bag else NullWriter())
        with writer:
            counts = copy_messages(parts, writer)
        last = parts[-1]
        result = report.finish(last['sync_stats'], sum(p['wall_s'] for p in parts), counts,
                               read_error=last['read_error'], interrupted=None,
                               other_read=last['other_read'],
                               sync_resets=last['sync_resets'],
                               digest=writer.digest.hexdigest)
        report.write(new_report.path)
    except BaseException:
        for new in replacements:
            new.discard()
        raise
    for new in replacements:
        new.commit()
    pairs = result['pairs']
    status, reason = 'ok', None
    if result['read_error']:
        status, reason = 'failed', (f"{result['read_error']}; the {pairs['fused']} pairs fused "
                                    f'before the damage are scored')
    elif pairs['matched'] == 0:
        status, reason = 'failed', (report.all_rejected(result)
                                    or 'no thermal/RGB pairs within sync.slop')
    elif pairs['fused'] == 0:
        status, reason = 'failed', (f"all {pairs['failed']} pairs failed (first reason: "
                                    f"{next(iter(result['failure_reasons']), 'unknown')})")
    row = bag_row(bag, result, status, reason, report=str(folder / 'report' / 'report.md'),
                  fused_bag=str(out_path) if write_bag and out_path.exists() else None,
                  task_s=sum(r.get('task_s') or 0.0 for r in rows),
                  worker_pid=rows[0].get('worker_pid'),
                  worker_peak_rss_mb=max((r.get('worker_peak_rss_mb') or 0.0) for r in rows),
                  fingerprint=None,
                  chunks=[{'first': r['chunk']['first'], 'end': r['chunk']['end'],
                           'fused': r.get('fused'), 'wall_s': r.get('wall_s'),
                           'worker_pid': r.get('worker_pid'), 'attempts': r.get('attempts', 1),
                           'resumed': bool(r.get('resumed'))} for r in rows])
    if status == 'ok':
        row['fingerprint'] = bag_fingerprint(bag.path)
        entry = {'key': task['key'], 'fingerprint': row['fingerprint'], 'row': row}
        writing.write_bytes(folder / corpus_run.ENTRY,
                            (json.dumps(entry, indent=1) + '\n').encode())
        shutil.rmtree(folder / 'chunks', ignore_errors=True)  # merged: the bag's entry holds it
    return row


class ChunkedBags:
    """
    The chunked bags of a run: their chunks' rows as they come, each bag merged when whole.

    ``expect(tasks)`` registers a bag's chunk tasks (those an earlier run finished come back at
    once from their entries, ``resumed``) and returns the tasks still to run; ``add(row)``
    takes a chunk's row and returns the bag's row once every chunk of the bag has one (None
    before).
    """

    def __init__(self):
        self._tasks: Dict[str, List[dict]] = {}
        self._rows: Dict[str, Dict[int, dict]] = {}
        self.merge_s = 0.0  # time spent merging, in this process

    def expect(self, tasks: List[dict], fresh: bool = False) -> List[dict]:
        bag_id = tasks[0]['id']
        self._tasks[bag_id] = tasks
        self._rows[bag_id] = {}
        todo = []
        for task in tasks:
            done = None if fresh else corpus_run.read_chunk_entry(task)
            if done is not None:
                self._rows[bag_id][task['chunk']['index']] = done
            else:
                todo.append(task)
        return todo

    def ready(self) -> List[dict]:
        """Return the rows of bags whose chunks an earlier run did all (merged now)."""
        return [row for row in (self._complete(b) for b in list(self._tasks)) if row]

    def add(self, row: dict) -> Optional[dict]:
        self._rows[row['id']][row['chunk']['index']] = row
        return self._complete(row['id'])

    def _complete(self, bag_id: str) -> Optional[dict]:
        tasks, rows = self._tasks[bag_id], self._rows[bag_id]
        if len(rows) < len(tasks):
            return None
        del self._tasks[bag_id]
        ordered = [rows[k] for k in range(len(tasks))]
        return self._bag_row(tasks[0], ordered)

    def _bag_row(self, task: dict, rows: List[dict]) -> dict:
        bad = [r for r in rows if r['status'] != 'ok']
        if bad:
            done = len(rows) - len(bad)
            worst = next((r for r in bad if r['status'] == 'failed'), bad[0])
            status = 'failed' if worst['status'] == 'failed' else (
                'not_run' if not done and all(r['status'] == 'not_run' for r in bad)
                else 'interrupted')
            kept = f'{done} of {len(rows)} chunks done' + (
                ' and kept (a rerun does the rest)' if done else '')
            row = corpus_run.failed_row(dict(task, chunk=None), status,
                                        f"{worst['reason']}; {kept}")
            row.update(fused=sum(r.get('fused') or 0 for r in rows if r['status'] == 'ok'),
                       chunks=[{'first': r['chunk']['first'], 'end': r['chunk']['end'],
                                'status': r['status'], 'fused': r.get('fused')} for r in rows])
            return row
        start = time.perf_counter()
        parts = []

        def work() -> None:
            for r in rows:
                parts.append(load_part(r['part']))
            merged.append(merge(task, parts, rows))

        merged: List[dict] = []
        status, reason = corpus_run.attempt(work)
        self.merge_s += time.perf_counter() - start
        if merged:
            return merged[0]
        return corpus_run.failed_row(dict(task, chunk=None), status,
                                     f'merging its {len(rows)} chunks failed: {reason}')
