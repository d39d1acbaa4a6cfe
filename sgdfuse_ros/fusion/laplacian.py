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
Classical multi-scale fusion: a Laplacian pyramid, the baseline first stage.

Detail bands take, per pixel, the coefficient of larger magnitude (the stronger edge of the two
cameras); the base band is the mean of the two sources. No learning, no prior: the reference
point the learned stages must beat.
"""

from __future__ import annotations

import cv2
import numpy as np


def _pyramid(image: np.ndarray, levels: int):
    gauss = [image]
    for _ in range(levels - 1):
        if min(gauss[-1].shape[:2]) < 4:
            break
        gauss.append(cv2.pyrDown(gauss[-1]))
    bands = []
    for fine, coarse in zip(gauss[:-1], gauss[1:]):
        up = cv2.pyrUp(coarse, dstsize=(fine.shape[1], fine.shape[0]))
        bands.append(fine - up)
    bands.append(gauss[-1])
    return bands


def _stronger(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """
    Per pixel, ``x`` where ``|x| >= |y|`` else ``y`` (``np.where`` semantics, NaN -> y).

    OpenCV's compare and masked copy run about 4x faster than ``np.where`` on a boolean mask.
    Array against array only: OpenCV takes a 1x1 to 4x1 array beside a number for a scalar
    (an Hx1 frame's pyramid levels are such arrays).
    """
    keep_x = cv2.compare(np.abs(x), np.abs(y), cv2.CMP_GE)
    out = y.copy()
    cv2.copyTo(x, keep_x, out)
    return out


def laplacian_fusion(thermal: np.ndarray, visible: np.ndarray, levels: int = 4) -> np.ndarray:
    """float32 HxW in [0, 1] twice -> fused float32 HxW in [0, 1]."""
    a = _pyramid(np.asarray(thermal, np.float32), levels)  # no copy when already float32
    b = _pyramid(np.asarray(visible, np.float32), levels)
    fused = [_stronger(x, y) for x, y in zip(a[:-1], b[:-1])]
    out = 0.5 * (a[-1] + b[-1])
    for band in reversed(fused):
        out = cv2.pyrUp(out, dstsize=(band.shape[1], band.shape[0])) + band
    return np.clip(out, 0.0, 1.0)


class LaplacianStage:
    """First-stage plug-in wrapping :func:`laplacian_fusion` (ignores the prior)."""

    name = 'laplacian'

    def __init__(self, levels: int = 4):
        self.levels = int(levels)

    def __call__(self, thermal, visible, prior) -> np.ndarray:
        return laplacian_fusion(thermal, visible, self.levels)
