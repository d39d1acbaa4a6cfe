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
Stable target ids across frames: a small box tracker (IoU first, centre distance second).

Each frame's boxes are matched to the live tracks greedily, best pair first:

1. pairs overlapping by at least ``min_iou`` (intersection over union), highest first;
2. then, for what is left, pairs whose centres are closer than ``max_shift`` times the
   track's box diagonal (a small target moving faster than its own size), closest first.

A matched box takes its track's id; an unmatched box starts a new track with the next id
(1, 2, 3, ...; ids are never reused while the tracker lives). A track that finds no box keeps
its id for ``max_missed`` frames (a target hidden for a moment comes back with its id), then
ends. The node and the bag replay keep one tracker per run (the node: per activation), so a
target keeps its id in ``semantic/detections`` for as long as it is tracked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

Box = Tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass
class Track:
    id: int  # noqa: A003 (the track id, as vision_msgs names it)
    box: Box
    missed: int = 0
    age: int = 1  # frames it was matched in


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _centre_shift(track: Box, box: Box) -> float:
    """Distance between the centres, in units of the track box's diagonal."""
    dx = (track[0] + track[2] - box[0] - box[2]) / 2.0
    dy = (track[1] + track[3] - box[1] - box[3]) / 2.0
    diagonal = max(float(np.hypot(track[2] - track[0], track[3] - track[1])), 1.0)
    return float(np.hypot(dx, dy)) / diagonal


class TargetTracker:
    """``update(boxes)`` -> one stable id per box (see the module's description)."""

    def __init__(self, min_iou: float = 0.3, max_shift: float = 0.5, max_missed: int = 5):
        self.min_iou = float(min_iou)
        self.max_shift = float(max_shift)
        self.max_missed = int(max_missed)
        self.tracks: List[Track] = []
        self.next_id = 1

    def reset(self) -> None:
        """Forget every track (ids start again at 1)."""
        self.tracks, self.next_id = [], 1

    def update(self, boxes: Sequence[Box]) -> List[int]:
        boxes = [tuple(float(v) for v in b) for b in boxes]
        ids: List[int] = [0] * len(boxes)
        free_tracks = set(range(len(self.tracks)))
        free_boxes = set(range(len(boxes)))
        pairs = sorted(((box_iou(self.tracks[t].box, boxes[b]), t, b)
                        for t in free_tracks for b in free_boxes), reverse=True)
        for iou, t, b in pairs:
            if iou < self.min_iou:
                break
            if t in free_tracks and b in free_boxes:
                self._match(t, b, boxes, ids, free_tracks, free_boxes)
        shifts = sorted((_centre_shift(self.tracks[t].box, boxes[b]), t, b)
                        for t in free_tracks for b in free_boxes)
        for shift, t, b in shifts:
            if shift > self.max_shift:
                break
            if t in free_tracks and b in free_boxes:
                self._match(t, b, boxes, ids, free_tracks, free_boxes)
        for t in free_tracks:
            self.tracks[t].missed += 1
        for b in sorted(free_boxes):
            ids[b] = self.next_id
            self.tracks.append(Track(self.next_id, boxes[b]))
            self.next_id += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return ids

    def _match(self, t, b, boxes, ids, free_tracks, free_boxes) -> None:
        track = self.tracks[t]
        track.box, track.missed = boxes[b], 0
        track.age += 1
        ids[b] = track.id
        free_tracks.discard(t)
        free_boxes.discard(b)
