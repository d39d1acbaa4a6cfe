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
The fallback prior: warm blobs of the thermal image, no checkpoint needed.

Warm objects (people, animals, engines) are what a thermal camera adds to a visible one, so the
fallback marks as targets the connected regions that stand out above the scene's robust
background level: smooth, threshold at median + k * (robust std), clean, label, keep the largest.
Sizes are given for a 640-pixel-wide image and scaled with the frame; frames much wider than
that are analysed at 640 wide and the result is scaled back, so the cost stays bounded (about
3-6 ms at 640x512 on one core of the development machine; ``benchmarks/bench_prior.py``).

The same warm-blob analysis (:meth:`ThermalPrior.warm_blobs`) places the point prompts of the
SAM prior (:mod:`sgdfuse_ros.prior.prompts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .format import label_boundaries, SemanticPrior

WORK_WIDTH = 640          # sizes are defined at this width
MAX_WORK_WIDTH = 800      # wider frames are analysed downscaled to WORK_WIDTH


@dataclass
class WarmBlobs:
    """Warm regions of one thermal frame (at the frame's resolution, or the work resolution)."""

    labels: np.ndarray      # uint16 HxW, 1..count, ordered by decreasing area; 0 elsewhere
    areas: np.ndarray       # int64 (count,), pixels of each label (index 0 = label 1)
    boxes: np.ndarray       # int64 (count, 4), x, y, width, height of each label
    smooth: np.ndarray      # float32 HxW, the blurred thermal image the threshold applied to
    threshold: float        # warm above this (in the thermal image's [0, 1] units)
    background: float       # robust background level (median)
    spread: float           # robust standard deviation of the background

    @property
    def count(self) -> int:
        return int(self.areas.size)


class ThermalPrior:
    name = 'thermal'

    def __init__(self, sigma: float = 2.0, k: float = 1.5, min_area: int = 30,
                 max_regions: int = 32, min_contrast: float = 0.04):
        self.sigma = float(sigma)
        self.k = float(k)
        self.min_area = int(min_area)
        self.max_regions = int(max_regions)
        self.min_contrast = float(min_contrast)

    @classmethod
    def from_config(cls, config: dict) -> 'ThermalPrior':
        return cls(config['prior.thermal.sigma'], config['prior.thermal.k'],
                   config['prior.thermal.min_area'], config['prior.thermal.max_regions'])

    def statistics(self, thermal: np.ndarray):
        """Return (smoothed image, background median, robust std) of ``thermal`` (float32)."""
        thermal = np.asarray(thermal, np.float32)
        scale = thermal.shape[1] / float(WORK_WIDTH)
        sigma = self.sigma * scale
        smooth = cv2.GaussianBlur(thermal, (0, 0), sigma) if sigma > 0.3 else thermal
        step = max(1, int(round(4 * max(scale, 0.25))))
        sample = smooth[::step, ::step]
        background = float(np.median(sample))
        spread = 1.4826 * float(np.median(np.abs(sample - background)))
        return smooth, background, spread

    def warm_blobs(self, thermal: np.ndarray) -> WarmBlobs:
        """Label the warm regions of ``thermal`` (float32 HxW in [0, 1]), largest first."""
        thermal = np.asarray(thermal, np.float32)
        h, w = thermal.shape
        scale = w / float(WORK_WIDTH)
        smooth, background, spread = self.statistics(thermal)
        threshold = background + max(self.k * spread, self.min_contrast)
        # uint8 0/255; numpy, not cv2.compare: OpenCV mistakes a 1x1 frame beside a number
        mask = np.greater(smooth, threshold).view(np.uint8) * np.uint8(255)
        radius = max(1, int(round(1.5 * scale)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        # after the opening every component has several pixels: 16-bit ids cannot overflow for
        # frames below ~600k pixels, and 16-bit labelling is about twice as fast
        ltype = cv2.CV_16U if h * w <= 9 * 65535 else cv2.CV_32S
        count, components, stats, _ = cv2.connectedComponentsWithStats(
            mask, connectivity=8, ltype=ltype)
        areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
        min_area = self.min_area * scale * scale
        order = [i for i in np.argsort(-areas, kind='stable') if areas[i] >= min_area]
        order = order[: self.max_regions]
        if len(order) == count - 1 and order == list(range(count - 1)) and \
                components.dtype == np.uint16:
            labels = components  # already 1..N by decreasing area, nothing dropped
        else:
            lut = np.zeros(max(count, 256), np.uint16)
            lut[np.asarray(order, np.int64) + 1] = np.arange(1, len(order) + 1, dtype=np.uint16)
            if count <= 256 and len(order) < 256:  # 8-bit table lookup: ~10x faster than take
                small = cv2.LUT(components.astype(np.uint8), lut[:256].astype(np.uint8))
                labels = small.astype(np.uint16)
            else:
                labels = np.take(lut, components)
        kept = np.asarray(order, np.int64)
        boxes = stats[1:, :4].astype(np.int64)[kept].reshape(-1, 4)
        return WarmBlobs(labels, areas[kept], boxes, smooth, float(threshold), background,
                         float(spread))

    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray = None,
                 visible_bgr: np.ndarray = None) -> SemanticPrior:
        """``thermal``: float32 HxW in [0, 1] at the output resolution (the visible is unused)."""
        h, w = thermal.shape
        if w > MAX_WORK_WIDTH:  # analyse at 640 wide, hand back at the frame's size
            small = (WORK_WIDTH, max(1, int(round(h * WORK_WIDTH / w))))
            reduced = cv2.resize(np.asarray(thermal, np.float32), small,
                                 interpolation=cv2.INTER_AREA)
            return self(reduced).resized((h, w))
        blobs = self.warm_blobs(thermal)
        labels = blobs.labels
        targets = target_strength(blobs.smooth, labels > 0, blobs.threshold)
        return SemanticPrior(labels, targets, label_boundaries(labels), source=self.name)


def target_strength(smooth: np.ndarray, inside: np.ndarray, threshold: float) -> np.ndarray:
    """
    Return the ``targets`` map of a prior whose target pixels are ``inside`` (bool HxW).

    0.5 at the warm threshold rising to 1.0 at the warmest target pixels' level (90th
    percentile), never below 0.5 inside a target (so a cooler part of a warm object, such as
    clothing, still counts), 0 outside, edges softened by about a pixel at 640 wide. Shared by
    the thermal and the SAM priors, so the fusion stages see one scale whatever the source.
    """
    h, w = smooth.shape
    targets = np.zeros((h, w), np.float32)
    if not inside.any():
        return targets
    warm = smooth[inside]
    top = float(np.percentile(warm, 90))
    span = max(top - threshold, 1e-3)
    targets[inside] = np.clip(0.5 + 0.5 * (warm - threshold) / span, 0.5, 1.0)
    return cv2.GaussianBlur(targets, (0, 0), max(0.8, w / float(WORK_WIDTH)))


class EmptyPrior:
    """prior.source = none: an all-background prior (the ablation and the cheapest setting)."""

    name = 'none'

    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray = None,
                 visible_bgr: np.ndarray = None) -> SemanticPrior:
        return SemanticPrior.empty(thermal.shape, source=self.name)
