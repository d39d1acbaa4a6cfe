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
The semantic prior: the one format every fusion stage reads, whatever produced it.

``SemanticPrior`` holds three maps at the output resolution:

- ``labels``: uint16 HxW instance label map; 0 is background, 1..N are regions (SAM masks or
  warm blobs). Overlaps are already resolved: one label per pixel.
- ``targets``: float32 HxW in [0, 1]; how strongly a pixel belongs to a salient target (a warm
  object a detector must not lose). Published as mono8 (x255).
- ``boundaries``: float32 HxW in [0, 1]; 1 on the edges between regions (and between a region and
  the background).

The networks read the targets and boundaries as float32 planes at their input's size
(:func:`prior_planes`).

Metadata: ``source`` ('sam', 'thermal', 'none'), ``stamp`` (time.monotonic() when it was
computed) and ``age_s`` (seconds between that and the frame that used it; 0 when computed for
this frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import time
from typing import Tuple

import cv2
import numpy as np


@dataclass
class SemanticPrior:
    labels: np.ndarray
    targets: np.ndarray
    boundaries: np.ndarray
    source: str = 'none'
    stamp: float = field(default_factory=time.monotonic)
    age_s: float = 0.0

    def __post_init__(self):
        if self.labels.dtype != np.uint16:
            self.labels = self.labels.astype(np.uint16)
        if self.targets.dtype != np.float32:
            self.targets = self.targets.astype(np.float32)
        if self.boundaries.dtype != np.float32:
            self.boundaries = self.boundaries.astype(np.float32)
        if not (self.labels.shape == self.targets.shape == self.boundaries.shape):
            raise ValueError('prior maps must share one shape')

    @property
    def shape(self) -> Tuple[int, int]:
        return self.labels.shape

    @property
    def num_regions(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0

    @classmethod
    def empty(cls, shape: Tuple[int, int], source: str = 'none') -> 'SemanticPrior':
        h, w = shape
        return cls(np.zeros((h, w), np.uint16), np.zeros((h, w), np.float32),
                   np.zeros((h, w), np.float32), source=source)

    @classmethod
    def from_labels(cls, labels: np.ndarray, target_ids, source: str,
                    soft_targets: np.ndarray = None) -> 'SemanticPrior':
        """Build targets and boundaries from a label map and the ids that are targets."""
        labels = labels.astype(np.uint16)
        if soft_targets is None:
            ids = np.asarray(sorted(target_ids), np.int64)
            targets = np.isin(labels, ids).astype(np.float32) if ids.size else \
                np.zeros(labels.shape, np.float32)
        else:
            targets = soft_targets.astype(np.float32)
        return cls(labels, targets, label_boundaries(labels), source=source)

    def resized(self, shape: Tuple[int, int]) -> 'SemanticPrior':
        """Return the prior at another resolution (labels nearest, maps linear)."""
        if tuple(shape) == self.shape:
            return self
        size = (shape[1], shape[0])
        return replace(self,
                       labels=cv2.resize(self.labels, size, interpolation=cv2.INTER_NEAREST),
                       targets=cv2.resize(self.targets, size, interpolation=cv2.INTER_LINEAR),
                       boundaries=cv2.resize(self.boundaries, size,
                                             interpolation=cv2.INTER_LINEAR))

    def targets_u8(self) -> np.ndarray:
        return np.clip(self.targets * 255.0 + 0.5, 0, 255).astype(np.uint8)


def prior_planes(prior: 'SemanticPrior', shape) -> Tuple[np.ndarray, np.ndarray]:
    """targets, boundaries of a SemanticPrior at ``shape`` as float32 arrays (zeros for None)."""
    if prior is None:
        zeros = np.zeros(tuple(shape), np.float32)
        return zeros, zeros
    prior = prior.resized(shape)
    return (np.ascontiguousarray(prior.targets, np.float32),
            np.ascontiguousarray(prior.boundaries, np.float32))


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """1.0 where a pixel's 4-neighbourhood holds another label."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    across = labels[:, 1:] != labels[:, :-1]  # each comparison once, on the labels' own type
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = labels[1:, :] != labels[:-1, :]
    edge[1:, :] |= down
    edge[:-1, :] |= down
    return edge.astype(np.float32)


def overlay(bgr: np.ndarray, prior: SemanticPrior, alpha: float = 0.45) -> np.ndarray:
    """Draw the prior over an image for people (contact sheets, the overlay topic)."""
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    prior = prior.resized(bgr.shape[:2])
    rng = np.random.default_rng(7)
    palette = rng.integers(60, 255, size=(max(prior.num_regions, 1) + 1, 3)).astype(np.uint8)
    palette[0] = 0
    colours = palette[np.minimum(prior.labels, prior.num_regions)]
    weight = (alpha * np.maximum(prior.targets, 0.35 * (prior.labels > 0)))[..., None]
    out = bgr.astype(np.float32) * (1 - weight) + colours.astype(np.float32) * weight
    out[prior.boundaries > 0.5] = (0, 255, 255)
    return np.clip(out, 0, 255).astype(np.uint8)
