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
Warm targets a detector can trust: the compact warm objects of a thermal frame, scored.

The fusion network's prior (:mod:`.thermal`) marks every region above the scene's warm threshold;
by day that includes sunlit walls, tree trunks and roofs, which a consumer of
``semantic/targets`` does not want. What the node *publishes* as targets
(``semantic/targets``, ``semantic/detections``) is this selection instead; the prior the fusion
stages read is unchanged.

1. Candidates: the connected regions of the smoothed thermal image above
   ``median + max(HOT_K * robust std, MIN_CONTRAST)`` (the prior's own smoothing and background
   statistics, :meth:`ThermalPrior.statistics`), or above the frame's ``HOT_PERCENTILE``
   percentile where that is lower (strongly gain-controlled 8-bit frames, such as RoadScene's,
   whose spread puts the first threshold above white), covering at least ``MIN_SHARE`` of the
   frame.
2. Each candidate is scored by a logistic model of 12 shape, heat and position features
   (:func:`candidate_features`): how big it is relative to the frame, its aspect and fill,
   how much warmer than the background and than a ring around it, whether it touches the top or
   bottom border, its vertical position, and the scene's background level and spread.
3. Candidates scoring at least ``MIN_SCORE`` are the targets: the ``targets`` map (same 0.5..1
   warmth scale as the prior's, :func:`~.thermal.target_strength`) and one box per target, with
   its score, for ``vision_msgs/Detection2DArray``.
4. Stable ids (:class:`TargetTracker`): each frame's boxes are matched to the live tracks
   greedily, best pair first: pairs overlapping by at least ``min_iou`` (intersection over
   union), highest first; then, for what is left, pairs whose centres are closer than
   ``max_shift`` times the track's box diagonal (a small target moving faster than its own
   size), closest first. A matched box takes its track's id; an unmatched box starts a new track
   with the next id (1, 2, 3, ...; never reused while the tracker lives). A track that finds no
   box keeps its id for ``max_missed`` frames (a target hidden for a moment comes back with its
   id), then ends. The node and the bag replay keep one tracker per run (the node: per
   activation), so a target keeps its id in ``semantic/detections`` while it is tracked.

The weights were fitted on the MSRS train split (a car-mounted street camera, day and night;
a candidate counts as right when at least half its pixels lie inside a human-labelled person,
bicycle or car box grown by 25 %), and ``MIN_SCORE`` was chosen there; the test-split figures
are in ``benchmarks/results/targets_test.md`` (``benchmarks/targets.py``). The position
features assume a camera looking roughly at the horizon, as a vehicle's or robot's does; the
score is a warmth-and-shape heuristic, not a classifier: it says "warm compact object", not
"person".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .thermal import MAX_WORK_WIDTH, target_strength, ThermalPrior, WORK_WIDTH

HOT_K = 2.0            # candidates: robust standard deviations above the background median
MIN_CONTRAST = 0.04    # ... and at least this far above it (thermal image in [0, 1])
HOT_PERCENTILE = 97.0  # ... or above this percentile of the frame, if that is lower
MIN_SHARE = 3 / 16384.0  # smaller candidates are noise (a share of the frame: 3 px at 128x128)
RING = 0.03            # ring around a candidate for its local contrast, as a share of the width
MIN_SCORE = 0.14       # candidates scoring at least this are published (chosen on MSRS train)

# logistic model over candidate_features(): fitted on MSRS train (benchmarks/targets.py --fit)
WEIGHTS = np.array([-0.157, 0.126, 0.28, 1.178, 1.058, -0.055, -1.428, 1.26, 4.561, -2.276,
                    29.805, -3.606])
BIAS = -9.916


@dataclass
class Target:
    """One warm target: box in pixels (x0, y0, x1, y1; end exclusive), score, pixel count."""

    box: Tuple[int, int, int, int]
    score: float
    pixels: int

    @property
    def center(self) -> Tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    @property
    def size(self) -> Tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0


@dataclass
class WarmTargets:
    """The published targets of one frame: the map (float32 HxW in [0, 1]) and the boxes."""

    targets: np.ndarray
    boxes: List[Target]

    def targets_u8(self) -> np.ndarray:
        return np.clip(self.targets * 255.0 + 0.5, 0, 255).astype(np.uint8)


def candidate_features(area: int, box, shape, smooth_values: np.ndarray, ring_mean,
                       background: float, spread: float) -> List[float]:
    """Return the 12 features the score reads, for one candidate (see the module's text)."""
    x, y, w, h = (int(v) for v in box)
    height, width = int(shape[0]), int(shape[1])
    sp = max(float(spread), 0.01)
    peak = float(smooth_values.max()) - background
    mean = float(smooth_values.mean())
    local = (mean - float(ring_mean)) / sp if ring_mean is not None else 0.0
    return [np.log(area / float(height * width)), np.log(h / float(w)), area / float(w * h),
            np.log1p(max(peak, 0.0) / sp), np.log1p(max(mean - background, 0.0) / sp), local,
            float(y == 0), (y + h / 2.0) / height, (y + h) / float(height), float(background),
            float(spread), float(y + h >= height)]


def score(features) -> float:
    """Return the logistic score in [0, 1] of a candidate's features."""
    z = float(np.dot(WEIGHTS, np.asarray(features, np.float64)) + BIAS)
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))


class TargetSelector:
    """
    ``selector(thermal)`` -> :class:`WarmTargets` of a thermal frame (float32 HxW in [0, 1]).

    ``min_score`` (default ``MIN_SCORE``): 0 publishes every candidate. Frames wider than
    ``MAX_WORK_WIDTH`` are analysed at ``WORK_WIDTH`` and the result scaled back.
    """

    def __init__(self, min_score: float = MIN_SCORE):
        self.min_score = float(min_score)
        self.blobs = ThermalPrior()  # the statistics the weights were fitted with

    def candidates(self, thermal: np.ndarray):
        """
        Return ``([(label, (x, y, w, h), area, features)], labels, smooth, hot)``.

        ``labels``: the candidates' component map; ``smooth``: the smoothed thermal image;
        ``hot``: the candidates' threshold.
        """
        smooth, background, spread = self.blobs.statistics(thermal)
        hot = background + max(HOT_K * spread, MIN_CONTRAST)
        # a strongly gain-controlled frame (the background's spread is huge): its warmest pixels
        step = max(1, smooth.shape[1] // 160)
        hot = min(hot, max(float(np.percentile(smooth[::step, ::step], HOT_PERCENTILE)),
                           background + MIN_CONTRAST))
        mask = np.greater(smooth, hot).view(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        h, w = smooth.shape
        min_pixels = max(3, int(round(MIN_SHARE * h * w)))
        radius = max(2, int(round(RING * w)))
        sums = cv2.integral(smooth.astype(np.float64))  # box sums in O(1)
        out = []
        for index in range(1, count):
            x, y, bw, bh, area = (int(v) for v in stats[index])
            if area < min_pixels:
                continue
            inside = labels[y:y + bh, x:x + bw] == index
            values = smooth[y:y + bh, x:x + bw][inside]
            # the ring: the box grown by the ring's radius, less the candidate's own pixels
            x0, y0 = max(x - radius, 0), max(y - radius, 0)
            x1, y1 = min(x + bw + radius, w), min(y + bh + radius, h)
            grown = sums[y1, x1] - sums[y0, x1] - sums[y1, x0] + sums[y0, x0]
            around = (x1 - x0) * (y1 - y0) - area
            ring_mean = (grown - float(values.sum())) / around if around > 0 else None
            features = candidate_features(area, (x, y, bw, bh), (h, w), values, ring_mean,
                                          background, spread)
            out.append((index, (x, y, bw, bh), area, features))
        return out, labels, smooth, hot

    def __call__(self, thermal: np.ndarray) -> WarmTargets:
        thermal = np.asarray(thermal, np.float32)
        h, w = thermal.shape
        if w > MAX_WORK_WIDTH:  # analyse at WORK_WIDTH, hand back at the frame's size
            small = (WORK_WIDTH, max(1, int(round(h * WORK_WIDTH / w))))
            reduced = self(cv2.resize(thermal, small, interpolation=cv2.INTER_AREA))
            sx, sy = w / float(small[0]), h / float(small[1])
            boxes = [Target((int(np.floor(t.box[0] * sx)), int(np.floor(t.box[1] * sy)),
                             min(int(np.ceil(t.box[2] * sx)), w),
                             min(int(np.ceil(t.box[3] * sy)), h)),
                            t.score, int(round(t.pixels * sx * sy))) for t in reduced.boxes]
            targets = cv2.resize(reduced.targets, (w, h), interpolation=cv2.INTER_LINEAR)
            return WarmTargets(targets, boxes)
        found, labels, smooth, hot = self.candidates(thermal)
        kept = [(i, box, area, score(f)) for i, box, area, f in found]
        kept = [c for c in kept if c[3] >= self.min_score]
        keep = np.zeros(max(int(labels.max()) + 1, 1), bool)
        for index, *_ in kept:
            keep[index] = True
        inside = keep[labels]
        targets = target_strength(smooth, inside, hot)
        kept.sort(key=lambda c: -c[2])  # largest first, as the prior orders its regions
        boxes = [Target((x, y, x + bw, y + bh), s, area) for _, (x, y, bw, bh), area, s in kept]
        return WarmTargets(targets, boxes)


def draw_detections(bgr: np.ndarray, boxes, ids, height: int = 0) -> np.ndarray:
    """
    Return ``bgr`` with each target's box and id drawn (contact sheets), as a new image.

    ``boxes``: :class:`Target` list; ``ids``: one id per box. Boxes scoring at least 0.5 are
    green, the others yellow. ``height`` > 0: the image is first resized to that height (the
    size it is shown at), so lines and text stay legible whatever the camera's resolution.
    """
    out = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR) if bgr.ndim == 2 else bgr.copy()
    scale = 1.0
    if height > 0 and out.shape[0] != height:
        scale = height / float(out.shape[0])
        width = max(1, int(round(out.shape[1] * scale)))
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA if scale < 1
                         else cv2.INTER_LINEAR)
    h, w = out.shape[:2]
    thick = max(1, int(round(max(h, w) / 400.0)))
    font = max(0.3, max(h, w) / 1300.0)
    for target, ident in zip(boxes, ids):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in target.box)
        colour = (0, 255, 0) if target.score >= 0.5 else (0, 230, 255)
        cv2.rectangle(out, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, thick)
        origin = (x0 + 1, max(y0 - 2, 9))
        cv2.putText(out, str(ident), origin, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0),
                    thick + 2, cv2.LINE_AA)
        cv2.putText(out, str(ident), origin, cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick,
                    cv2.LINE_AA)
    return out


# --- stable ids across frames: a small box tracker (IoU first, centre distance second) ---

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

    def forget_tracks(self) -> None:
        """End every track; the next new track still takes the next unused id."""
        self.tracks = []

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
