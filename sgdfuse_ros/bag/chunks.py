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
A long bag as chunks of pairs: the plan, what a chunk keeps (its part), and the parts merged.

``sgdfuse corpus --chunk-frames N`` runs a bag of more than N pairs (as its metadata counts them)
as several tasks, each fusing the pairs ``[k*N, (k+1)*N)`` of the whole bag's numbering; the
last one takes every pair from ``k*N`` on. A chunk reads and pairs the bag from its start as the
whole replay does (:class:`sgdfuse_ros.bag.replay.Replay` with ``pairs=``): pairing is done once
per chunk on the same stream, so a pair is never lost or counted twice at a border, whatever N.

A chunk keeps its **part** in its own folder: ``messages.bin`` (its output messages, serialised,
in order, with the frame boundaries), ``samples.npz`` (the contact sheet's thumbnails that fell
in it) and ``part.json`` (its frames, failures, timings and, from its reading of the bag, the
message accounting), written last: a part is whole or absent. :func:`merged_report` makes the
bag's one :class:`ReplayReport` from the parts (the frames in pair order, so metrics are means
over frames, as the whole replay computes them; the accounting of the bag's messages from the
last chunk, the only one that reads to the end) and :func:`copy_messages` writes the parts'
messages to one writer in order: the same messages, log times and bytes as the whole replay
writes (the same ``output_sha256``; with ``--write-bags`` one fused bag).
"""

from __future__ import annotations

import json
from pathlib import Path
import struct
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .report import ReplayReport
from .writer import known_topic, serialised
from .. import writing

PART = 'part.json'
MESSAGES = 'messages.bin'
SAMPLES = 'samples.npz'
#: one record of messages.bin: kind (0 message, 1 frame boundary), topic number, log time, size
RECORD = struct.Struct('<BHqQ')
MESSAGE, CHECKPOINT = 0, 1


def plan(expected_pairs: int, chunk_frames: int) -> List[Tuple[int, Optional[int]]]:
    """
    Return the chunks of a bag: ``(first, end)`` pair indices, ``end`` None for the last.

    One chunk (``[(0, None)]``) when ``chunk_frames`` is 0 or the bag has at most that many
    pairs; otherwise ``ceil(expected / chunk_frames)`` chunks of ``chunk_frames`` pairs, the
    last open-ended (a bag may pair fewer than its metadata promises; never more).
    """
    if chunk_frames <= 0 or expected_pairs <= chunk_frames:
        return [(0, None)]
    count = -(-expected_pairs // chunk_frames)
    return [(k * chunk_frames, (k + 1) * chunk_frames if k + 1 < count else None)
            for k in range(count)]


class PartWriter:
    """
    A chunk's writer: its output messages serialised into ``messages.bin``, in order.

    The writer interface :class:`Replay` uses (``add_topic``, ``write``, ``checkpoint``,
    ``counts``); :func:`copy_messages` writes them on into the bag's one writer.
    """

    def __init__(self, folder):
        self.path = Path(folder) / MESSAGES
        self.counts: Dict[str, int] = {}
        self.topics: List[Tuple[str, str]] = []  # (topic, type) in the order declared
        self._types: Dict[str, str] = {}
        self._index: Dict[str, int] = {}
        self._handle = None

    def open(self) -> 'PartWriter':  # noqa: A003  (file-like API)
        self._handle = open(self.path, 'wb')
        return self

    def add_topic(self, topic: str, msgtype: str, qos: Optional[Sequence] = None) -> None:
        if known_topic(self._types, topic, msgtype):
            return
        self._types[topic] = msgtype
        self._index[topic] = len(self.topics)
        self.topics.append((topic, msgtype))
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, msg, msgtype: Optional[str] = None) -> None:
        data, msgtype = serialised(self._types, topic, msg, msgtype)
        self.add_topic(topic, msgtype)
        self._handle.write(RECORD.pack(MESSAGE, self._index[topic], int(log_time_ns), len(data)))
        self._handle.write(data)
        self.counts[topic] += 1

    def checkpoint(self) -> None:
        self._handle.write(RECORD.pack(CHECKPOINT, 0, 0, 0))

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def close_partial(self) -> Optional[str]:
        self.close()
        return None

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def __enter__(self) -> 'PartWriter':
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False


def save_part(folder, replay, report: ReplayReport, writer: PartWriter, wall_s: float,
              extra: dict) -> dict:
    """Keep a finished chunk's part in ``folder`` (part.json last); return its summary."""
    folder = Path(folder)
    arrays = {}
    samples = []
    for n, (index, stamp_ns, panels) in enumerate(report.samples):
        samples.append([int(index), int(stamp_ns)])
        for k, panel in enumerate(panels):
            arrays[f's{n}_{k}'] = panel
    if arrays:
        with open(folder / SAMPLES, 'wb') as handle:
            np.savez(handle, **arrays)
    part = {
        'first': replay.first, 'end': replay.end, 'pairs_seen': replay.pairs,
        'ended_early': replay.ended_early,
        'report': {'input_bag': report.input_bag, 'output_bag': report.output_bag,
                   'topics': report.topics, 'settings': report.settings,
                   'expected_pairs': report.expected_pairs,
                   'with_metrics': report.with_metrics},
        'topics': writer.topics, 'counts': writer.counts,
        'read': dict(report.read), 'rejections': {r: dict(c) for r, c in
                                                  report.rejections.items()},
        'rejection_examples': report.rejection_examples,
        'frames': report.frames, 'failures': report.failures, 'timings': report.timings,
        'samples': samples, 'closest_gap_s': report.closest_gap_s, 'notes': report.notes,
        'missing_examples': report.missing_examples,
        'sync_stats': replay.sync.stats(), 'sync_resets': replay.sync_resets,
        'other_read': replay.other_read, 'read_error': replay.read_error,
        'wall_s': wall_s,
    }
    part.update(extra)
    writing.write_bytes(folder / PART, (json.dumps(part) + '\n').encode())
    return part


def load_part(folder) -> dict:
    """Read a chunk's part (its samples as arrays); OSError or ValueError when not whole."""
    folder = Path(folder)
    part = json.loads((folder / PART).read_text())
    if not isinstance(part, dict) or 'frames' not in part:
        raise ValueError(f'{folder / PART} is not a chunk part')
    panels = []
    if part['samples']:
        with np.load(folder / SAMPLES, allow_pickle=False) as data:
            for n, (index, stamp_ns) in enumerate(part['samples']):
                panels.append((index, stamp_ns, [data[f's{n}_{k}'] for k in range(4)]))
    part['sample_panels'] = panels
    part['folder'] = str(folder)
    return part


def merged_report(parts: List[dict], output_bag: Optional[str]) -> ReplayReport:
    """
    Return the bag's one report from its chunks' parts (in order), ready for ``finish``.

    Frames, failures, samples and per-frame timings are the chunks' own, in pair order; what
    comes from reading the bag (messages read and rejected, the closest stamp gap, notes,
    message decode times) is the last chunk's, which read all of it.
    """
    last = parts[-1]
    args = dict(last['report'], output_bag=output_bag)
    report = ReplayReport(args['input_bag'], args['output_bag'], args['topics'],
                          args['settings'], args['expected_pairs'], args['with_metrics'])
    report.read.update(last['read'])
    for role, counts in last['rejections'].items():
        report.rejections[role].update(counts)
    report.rejection_examples = {r: list(v) for r, v in last['rejection_examples'].items()}
    report.closest_gap_s = last['closest_gap_s']
    report.notes = list(last['notes'])
    timings: Dict[str, List[float]] = {}
    for part in parts:
        report.frames.extend(part['frames'])
        report.failures.extend(part['failures'])
        report.samples.extend(part['sample_panels'])
        report.missing_examples.extend(part['missing_examples'])
        for name, values in part['timings'].items():
            if name != 'message_decode':
                timings.setdefault(name, []).extend(values)
    report.missing_examples = report.missing_examples[:5]
    decode = last['timings'].get('message_decode')
    report.timings = dict({'message_decode': decode} if decode else {}, **timings)
    return report


def _records(path) -> Iterator[Tuple[int, int, int, bytes]]:
    with open(path, 'rb') as handle:
        while True:
            head = handle.read(RECORD.size)
            if not head:
                return
            if len(head) != RECORD.size:
                raise ValueError(f'{path} ends inside a record')
            kind, topic, log_ns, size = RECORD.unpack(head)
            data = handle.read(size)
            if len(data) != size:
                raise ValueError(f'{path} ends inside a message')
            yield kind, topic, log_ns, data


def copy_messages(parts: List[dict], writer) -> Dict[str, int]:
    """Write the parts' messages to ``writer`` in order (topics declared as the replay does)."""
    for topic, msgtype in parts[0]['topics']:
        writer.add_topic(topic, msgtype)
    for part in parts:
        topics = part['topics']
        for kind, number, log_ns, data in _records(Path(part['folder']) / MESSAGES):
            if kind == CHECKPOINT:
                writer.checkpoint()
            else:
                topic, msgtype = topics[number]
                writer.write(topic, log_ns, data, msgtype)
    return dict(writer.counts)
