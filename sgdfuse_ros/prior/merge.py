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
SAM masks -> one :class:`SemanticPrior`: duplicates merged, overlaps resolved, small dropped.

SAM returns overlapping binary masks (a person, the person's jacket, the car behind). The prior
needs one label per pixel, so:

1. masks smaller than ``min_area`` pixels are dropped;
2. near-duplicates (IoU above ``duplicate_iou``) are merged into the better-scored one, which
   becomes a target if either was;
3. masks are painted in priority order, later ones winning the pixels they share with earlier
   ones: non-target regions first, then target regions (a warm object is never covered by the
   background it stands in front of); within each group the largest first, so a small object
   inside a larger region keeps its own label;
4. a region left with fewer than ``min_area`` visible pixels after painting goes back to the
   background (label 0);
5. labels are renumbered 1..N: targets first, then the other regions, each by decreasing area.

A region is a target if it was prompted from a warm blob, or if it is warm on average (its mean
smoothed temperature is above the warm threshold of the thermal analysis). The targets map then
has the same scale as the thermal prior's (:func:`sgdfuse_ros.prior.thermal.target_strength`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .format import label_boundaries, SemanticPrior
from .thermal import target_strength, WarmBlobs


@dataclass
class MaskCandidate:
    mask: np.ndarray        # bool HxW at the prior's resolution
    score: float = 1.0      # quality (SAM's predicted IoU; higher is better)
    target: bool = False    # prompted from a warm blob

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _dedupe(candidates: List[Tuple[MaskCandidate, int]], duplicate_iou: float):
    kept: List[list] = []  # [candidate, area, target]
    for cand, area in sorted(candidates, key=lambda c: (not c[0].target, -c[0].score)):
        for entry in kept:
            # cheap reject first: IoU cannot exceed the ratio of the smaller to the larger area
            if min(area, entry[1]) < duplicate_iou * max(area, entry[1]):
                continue
            if _iou(cand.mask, entry[0].mask) > duplicate_iou:
                entry[2] = entry[2] or cand.target
                break
        else:
            kept.append([cand, area, cand.target])
    return kept


def merge_masks(candidates: Sequence[MaskCandidate], shape: Tuple[int, int],
                min_area: int = 64, blobs: Optional[WarmBlobs] = None,
                duplicate_iou: float = 0.85, source: str = 'sam') -> SemanticPrior:
    """
    Resolve ``candidates`` into a prior of ``shape``.

    ``blobs`` (the thermal analysis of the same frame) marks warm-on-average regions as targets and
    grades the targets map.
    """
    h, w = shape
    sized = []
    for cand in candidates:
        if cand.mask.shape != (h, w):
            raise ValueError(f'mask of shape {cand.mask.shape} for a prior of shape {(h, w)}')
        area = cand.area
        if area >= max(min_area, 1):
            sized.append((cand, area))
    regions = _dedupe(sized, duplicate_iou)
    use_blobs = blobs is not None and blobs.smooth.shape == (h, w)
    if use_blobs:
        for entry in regions:
            if not entry[2] and float(blobs.smooth[entry[0].mask].mean()) > blobs.threshold:
                entry[2] = True
    # paint: non-targets before targets, larger before smaller; later paint wins
    regions.sort(key=lambda e: (e[2], -e[1]))
    canvas = np.zeros((h, w), np.int32)  # index into regions + 1
    for index, entry in enumerate(regions):
        canvas[entry[0].mask] = index + 1
    visible = np.bincount(canvas.ravel(), minlength=len(regions) + 1)[1:]
    survivors = [i for i in range(len(regions)) if visible[i] >= max(min_area, 1)]
    survivors.sort(key=lambda i: (not regions[i][2], -int(visible[i])))
    lut = np.zeros(len(regions) + 1, np.uint16)
    for new_label, i in enumerate(survivors, start=1):
        lut[i + 1] = new_label
    labels = lut[canvas]
    target_labels = [n for n, i in enumerate(survivors, start=1) if regions[i][2]]
    inside = np.isin(labels, np.asarray(target_labels, np.uint16)) if target_labels else \
        np.zeros((h, w), bool)
    if use_blobs:
        targets = target_strength(blobs.smooth, inside, blobs.threshold)
    else:
        targets = inside.astype(np.float32)
    return SemanticPrior(labels, targets, label_boundaries(labels), source=source)
