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
Seeing and measuring whether the two cameras are aligned.

- :func:`check_image`: for ``sgdfuse register``, several frames side by side: a checkerboard of
  the registered thermal image and the visible image (edges must continue across the squares)
  and the thermal edges drawn in red over the visible image, with the outline of the thermal
  field in yellow.
- :func:`alignment_score` and :class:`AlignmentMonitor`: the node's live check. The score is the
  normalised correlation of the edge maps of the registered thermal image and the visible image
  where the thermal camera sees, at 160 pixels wide (well under a millisecond). Its level
  depends on the scene, so the monitor compares it with its own running level: a camera knocked
  out of place makes it fall far below (WARN on ``/diagnostics``).
"""

from __future__ import annotations

from collections import deque
import math
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .estimate import edge_map, resize_to_width, to_gray_float

SCORE_WIDTH = 160


# --- the check image -----------------------------------------------------------------------------

def _u8(gray: np.ndarray) -> np.ndarray:
    g = to_gray_float(gray)
    return np.clip(np.rint(g * 255.0), 0, 255).astype(np.uint8)


def _stretch(gray_u8: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Spread the 1st-99th percentiles over 0-255 (a dark night frame becomes readable)."""
    values = gray_u8[mask] if mask is not None and mask.any() else gray_u8
    low, high = np.percentile(values, (1, 99))
    if high - low < 8:
        return gray_u8
    out = (gray_u8.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(out, 0, 255).astype(np.uint8)


def register_thermal(thermal: np.ndarray, homography: np.ndarray, visible_shape) -> tuple:
    """(thermal warped onto the visible frame (uint8), mask of the pixels it covers)."""
    h, w = visible_shape[:2]
    warped = cv2.warpPerspective(_u8(thermal), np.asarray(homography, np.float64), (w, h),
                                 flags=cv2.INTER_LINEAR)
    ones = np.full(thermal.shape[:2], 255, np.uint8)
    covered = cv2.warpPerspective(ones, np.asarray(homography, np.float64), (w, h),
                                  flags=cv2.INTER_NEAREST) > 0
    return warped, covered


def check_tiles(thermal: np.ndarray, visible: np.ndarray, homography: np.ndarray,
                width: int = 480, squares: int = 8) -> np.ndarray:
    """One frame's row of the check image: checkerboard | edge overlay (BGR), stretched."""
    vis = _u8(visible)
    warped, covered = register_thermal(thermal, homography, vis.shape)
    scale = width / vis.shape[1]
    size = (width, max(8, int(round(vis.shape[0] * scale))))
    vis_s = cv2.resize(vis, size, interpolation=cv2.INTER_AREA)
    th_s = cv2.resize(warped, size, interpolation=cv2.INTER_AREA)
    cov_s = cv2.resize(covered.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    vis_s, th_s = _stretch(vis_s), _stretch(th_s, cov_s)
    side = max(8, size[0] // squares)
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    board = ((yy // side + xx // side) % 2 == 0) & cov_s
    checker = np.where(board, th_s, vis_s)
    checker = cv2.cvtColor(checker, cv2.COLOR_GRAY2BGR)
    overlay = cv2.cvtColor((vis_s * 0.8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    edges = cv2.Canny(cv2.GaussianBlur(th_s, (0, 0), 1.0), 30, 80) > 0
    edges &= cv2.erode(cov_s.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    overlay[edges] = (0, 0, 255)
    corners = cv2.perspectiveTransform(
        np.array([[[0, 0], [thermal.shape[1] - 1, 0], [thermal.shape[1] - 1, thermal.shape[0] - 1],
                   [0, thermal.shape[0] - 1]]], np.float64), np.asarray(homography, np.float64))
    outline = np.rint(corners[0] * scale).astype(np.int32)
    for image in (checker, overlay):
        cv2.polylines(image, [outline], True, (0, 220, 255), 1, cv2.LINE_AA)
    gap = np.full((size[1], 6, 3), 255, np.uint8)
    return np.hstack([checker, gap, overlay])


def check_image(thermals: Sequence[np.ndarray], visibles: Sequence[np.ndarray],
                homography: np.ndarray, caption: str = '', width: int = 480) -> np.ndarray:
    """Rows of :func:`check_tiles`, one per frame, and a caption line on top."""
    rows = [check_tiles(t, v, homography, width) for t, v in zip(thermals, visibles)]
    gap = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    body = [rows[0]]
    for row in rows[1:]:
        body += [gap, row]
    head = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    text = caption or ('left: checkerboard (thermal / visible); right: thermal edges (red) on '
                       'visible')
    cv2.putText(head, text[:110], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([head] + body)


# --- the live score ------------------------------------------------------------------------------

def alignment_score(thermal: np.ndarray, visible: np.ndarray,
                    valid: Optional[np.ndarray] = None) -> Optional[float]:
    """
    Edge agreement of a registered pair, -1..1 (None when there is too little to compare).

    ``thermal`` and ``visible`` have the same size (the pipeline's output frame); ``valid``
    marks the pixels the thermal camera sees (None: all).
    """
    t = resize_to_width(to_gray_float(thermal), SCORE_WIDTH)
    v = resize_to_width(to_gray_float(visible), SCORE_WIDTH)
    et, ev = edge_map(t, 1.0), edge_map(v, 1.0)
    if valid is not None:
        mask = cv2.resize(valid.astype(np.uint8), (t.shape[1], t.shape[0]),
                          interpolation=cv2.INTER_NEAREST)
        mask = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
        if mask.sum() < 256:
            return None
        et, ev = et[mask], ev[mask]
    else:
        et, ev = et[2:-2, 2:-2].ravel(), ev[2:-2, 2:-2].ravel()
    et = et - et.mean()
    ev = ev - ev.mean()
    norm = float(np.linalg.norm(et) * np.linalg.norm(ev))
    if norm < 1e-9:
        return None
    return float(np.dot(et, ev) / norm)


class AlignmentMonitor:
    """
    Running alignment level of the node and a warning when the score falls far below it.

    ``add(score)`` every checked pair. The reference is the median of the first ``warmup``
    scores, then follows the recent median slowly (only while aligned, so a camera that stays
    knocked out of place keeps the warning). ``dropped`` is true when the median of the last
    ``recent`` scores is below ``drop_ratio`` x the reference.
    """

    def __init__(self, warmup: int = 20, recent: int = 5, drop_ratio: float = 0.5,
                 follow: float = 0.02):
        self.warmup, self.drop_ratio, self.follow = warmup, drop_ratio, follow
        self.first: List[float] = []
        self.recent: deque = deque(maxlen=recent)
        self.reference: Optional[float] = None
        self.checked = 0
        self.skipped = 0     # pairs with too little texture to score
        self.warnings = 0    # times the state went from aligned to dropped
        self.dropped = False
        self.last: Optional[float] = None

    def add(self, score: Optional[float]) -> None:
        if score is None or not math.isfinite(score):
            self.skipped += 1
            return
        self.checked += 1
        self.last = score
        self.recent.append(score)
        if self.reference is None:
            self.first.append(score)
            if len(self.first) >= self.warmup:
                self.reference = float(np.median(self.first))
            return
        level = float(np.median(self.recent))
        dropped = (len(self.recent) == self.recent.maxlen
                   and level < self.drop_ratio * self.reference)
        if dropped and not self.dropped:
            self.warnings += 1
        self.dropped = dropped
        if not dropped:
            self.reference += self.follow * (level - self.reference)

    def stats(self) -> dict:
        recent = float(np.median(self.recent)) if self.recent else None
        return {'checked': self.checked, 'skipped': self.skipped, 'last': self.last,
                'recent': recent, 'reference': self.reference, 'dropped': self.dropped,
                'warnings': self.warnings, 'warmup_left': (max(0, self.warmup - len(self.first))
                                                           if self.reference is None else 0)}
