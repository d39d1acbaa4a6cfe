"""The fallback prior: warm blobs of the thermal image, no checkpoint needed.

Warm objects (people, animals, engines) are what a thermal camera adds to a visible one, so the
fallback marks as targets the connected regions that stand out above the scene's robust
background level: smooth, threshold at median + k * (robust std), clean, label, keep the largest.
Sizes are given for a 640-pixel-wide image and scaled with the frame. A few milliseconds at
640x512 on one CPU core.
"""

from __future__ import annotations

import cv2
import numpy as np

from .format import SemanticPrior, label_boundaries


class ThermalPrior:
    name = "thermal"

    def __init__(self, sigma: float = 2.0, k: float = 1.5, min_area: int = 30,
                 max_regions: int = 32, min_contrast: float = 0.04):
        self.sigma = float(sigma)
        self.k = float(k)
        self.min_area = int(min_area)
        self.max_regions = int(max_regions)
        self.min_contrast = float(min_contrast)

    @classmethod
    def from_config(cls, config: dict) -> "ThermalPrior":
        return cls(config["prior.thermal.sigma"], config["prior.thermal.k"],
                   config["prior.thermal.min_area"], config["prior.thermal.max_regions"])

    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray = None) -> SemanticPrior:
        """``thermal``: float32 HxW in [0, 1] at the output resolution."""
        h, w = thermal.shape
        scale = w / 640.0
        sigma = self.sigma * scale
        smooth = cv2.GaussianBlur(thermal, (0, 0), sigma) if sigma > 0.3 else thermal
        sample = smooth[::4, ::4]
        median = float(np.median(sample))
        spread = 1.4826 * float(np.median(np.abs(sample - median)))
        threshold = median + max(self.k * spread, self.min_contrast)
        mask = (smooth > threshold).astype(np.uint8)
        radius = max(1, int(round(1.5 * scale)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        min_area = self.min_area * scale * scale
        keep = [i + 1 for i in np.argsort(-areas) if areas[i] >= min_area][: self.max_regions]
        lut = np.zeros(count, np.uint16)
        lut[keep] = np.arange(1, len(keep) + 1, dtype=np.uint16)
        labels = lut[components]
        # soft target strength: how far above the threshold, saturating at the warmest blob level
        inside = labels > 0
        targets = np.zeros((h, w), np.float32)
        if inside.any():
            top = float(np.percentile(smooth[inside], 90))
            strength = np.clip((smooth - threshold) / max(top - threshold, 1e-3), 0.0, 1.0)
            targets[inside] = 0.5 + 0.5 * strength[inside]
            targets = cv2.GaussianBlur(targets, (0, 0), max(0.8, scale))
        return SemanticPrior(labels, targets, label_boundaries(labels), source=self.name)


class EmptyPrior:
    """prior.source = none: an all-background prior (the ablation and the cheapest setting)."""

    name = "none"

    def __call__(self, thermal: np.ndarray, visible_y: np.ndarray = None) -> SemanticPrior:
        return SemanticPrior.empty(thermal.shape, source=self.name)
