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
SAM-like priors without a SAM checkpoint: object masks drawn from labelled boxes.

No SAM checkpoint is available here, yet the SAM path must not feed the fusion network something
it never saw. SAM answers a point prompt on a warm blob with the *object's* silhouette: tighter
than a box, following the object's outline rather than the warm threshold, including its cooler
parts (clothes, a car's body) and with an edge that is off by a pixel or two. This module draws
such masks from human-annotated boxes (the MSRS labels): inside each box, the pixels clearly
warmer than the box's surround, closed, filled, joined with an ellipse inscribed in the box (the
cooler body parts), the outline jittered by a random one-pixel dilation or erosion. The masks go
through the SAM path's own merge (:func:`sgdfuse_ros.prior.merge.merge_masks`, with the thermal
analysis of the frame, so the ``targets`` map has the SAM path's scale) and come out as a
``SemanticPrior`` with ``source='sam'``.

Used for training (a share of the MSRS crops get this prior instead of the fallback) and for the
check that the SAM path keeps targets at least as well as the fallback
(``benchmarks/target_contrast.py``, ``test/training/test_targets.py``).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import cv2
import numpy as np

from .format import SemanticPrior
from .merge import MaskCandidate, merge_masks
from .thermal import ThermalPrior

#: a box pixel is part of the object if it is warmer than the ring by this share of the box's
#: (90th percentile - ring) contrast
SILHOUETTE_SHARE = 0.35


def box_silhouette(thermal: np.ndarray, box: Sequence[int], rng=None) -> np.ndarray:
    """
    Bool HxW mask of the object in ``box`` ``(cls, x0, y0, x1, y1)`` of ``thermal`` in [0, 1].

    ``rng`` (a numpy Generator) jitters the outline by one pixel (dilate, erode or keep); None
    keeps it.
    """
    h, w = thermal.shape
    _, x0, y0, x1, y1 = (int(v) for v in box)
    mask = np.zeros((h, w), np.uint8)
    bw, bh = x1 - x0, y1 - y0
    ring = np.zeros((h, w), bool)
    ring[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3] = True
    ring[y0:y1, x0:x1] = False
    patch = thermal[y0:y1, x0:x1]
    if ring.any() and patch.size:
        level = float(np.median(thermal[ring]))
        top = float(np.percentile(patch, 90))
        if top > level:
            warm = patch > level + SILHOUETTE_SHARE * (top - level)
            mask[y0:y1, x0:x1] = warm.astype(np.uint8)
    ellipse = np.zeros((h, w), np.uint8)
    cv2.ellipse(ellipse, (((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0),
                          (max(bw * 0.9, 1.0), max(bh * 0.9, 1.0)), 0.0), 1, -1)
    if mask.any():
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        mask |= ellipse & cv2.dilate(mask, np.ones((3, 3), np.uint8))
    else:
        mask = ellipse
    if rng is not None and min(bw, bh) >= 4:
        choice = int(rng.integers(3))
        kernel = np.ones((3, 3), np.uint8)
        if choice == 1:
            mask = cv2.dilate(mask, kernel)
        elif choice == 2 and cv2.erode(mask, kernel).any():
            mask = cv2.erode(mask, kernel)
    return mask.astype(bool)


def synthetic_sam_prior(thermal: np.ndarray, boxes: List[Sequence[int]], rng=None,
                        min_area: int = 4,
                        thermal_prior: Optional[ThermalPrior] = None) -> SemanticPrior:
    """
    Return a SAM-format prior whose masks come from labelled boxes (see the module text).

    A mask is a target as in the SAM path: prompted (it overlaps a warm blob of the thermal
    analysis) or warm on average; the rest are non-target regions.
    """
    thermal = np.asarray(thermal, np.float32)
    blobs = (thermal_prior or ThermalPrior()).warm_blobs(thermal)
    warm = blobs.labels > 0
    candidates = []
    for box in boxes:
        mask = box_silhouette(thermal, box, rng)
        if not mask.any():
            continue
        prompted = bool((warm & mask).sum() >= max(1, 0.25 * mask.sum()))
        candidates.append(MaskCandidate(mask, 1.0, prompted))
    return merge_masks(candidates, thermal.shape, min_area=min_area, blobs=blobs, source='sam')
