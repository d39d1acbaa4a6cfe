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
Point prompts for SAM from thermal saliency: one positive point inside each warm blob.

A thermal camera tells where the warm objects are but draws their outlines poorly; SAM draws
outlines well but does not know which objects matter. So the prompts come from the thermal
frame: the warm blobs of :meth:`ThermalPrior.warm_blobs` are ranked by their integrated warmth
(sum over the blob of the temperature above the background: big and hot first) and each of the
best ``max_points`` blobs gets one point at its most interior pixel (the maximum of the distance
to the blob's edge, so a ring-shaped or elongated blob is not prompted on its rim or outside).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .thermal import ThermalPrior, WarmBlobs


@dataclass
class PointPrompts:
    """Prompts for one frame, in the frame's pixel coordinates."""

    points: np.ndarray      # float32 (N, 2): x, y of each positive point
    blob_ids: np.ndarray    # int64 (N,): label in ``blobs.labels`` each point was placed in
    saliency: np.ndarray    # float32 (N,): integrated warmth of that blob (rank order)
    blobs: WarmBlobs        # the warm-blob analysis they come from

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def blob_mask(self, index: int) -> np.ndarray:
        """Bool HxW mask of the blob prompt ``index`` was placed in."""
        return self.blobs.labels == self.blob_ids[index]


def warm_point_prompts(thermal: np.ndarray, max_points: int,
                       blob_finder: ThermalPrior = None) -> PointPrompts:
    """At most ``max_points`` prompts on the warmest blobs of ``thermal`` (float32 HxW, [0, 1])."""
    if max_points < 1:
        raise ValueError('max_points must be at least 1')
    finder = blob_finder if blob_finder is not None else ThermalPrior()
    blobs = finder.warm_blobs(thermal)
    ranked = []
    for index in range(blobs.count):
        label = index + 1
        x, y, w, h = (int(v) for v in blobs.boxes[index])
        inside = blobs.labels[y:y + h, x:x + w] == label
        warmth = blobs.smooth[y:y + h, x:x + w][inside] - blobs.background
        ranked.append((float(np.sum(np.maximum(warmth, 0.0))), label, (x, y, w, h), inside))
    ranked.sort(key=lambda item: -item[0])
    ranked = ranked[:max_points]
    points = np.zeros((len(ranked), 2), np.float32)
    for i, (_, _, (x, y, w, h), inside) in enumerate(ranked):
        # pad by one pixel so a blob touching its box edge still has an edge to measure from
        padded = np.pad(inside.astype(np.uint8), 1)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
        row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
        points[i] = (x + col, y + row)
    return PointPrompts(points=points,
                        blob_ids=np.asarray([r[1] for r in ranked], np.int64),
                        saliency=np.asarray([r[0] for r in ranked], np.float32),
                        blobs=blobs)
