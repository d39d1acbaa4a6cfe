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
Fuse on luminance, keep the visible camera's colour.

The visible frame is split into luminance and chroma (YCrCb, BT.601 as OpenCV defines it: the
same weights as the gray conversion the fusion metrics use); the fused luminance replaces Y.

Where the visible image is nearly black (night), its chroma is mostly sensor noise and bias; once
the thermal camera lifts those regions' luminance, that noise would show as a colour tint (purple
trees at night). And where the fused luminance is well above the visible one, that light came from
the thermal camera, which has no colour: keeping the visible chroma there paints a dim colour cast
(sodium street light, say) as a vivid one on the thermal-lit surfaces (neon-yellow streets at
night). :func:`attenuate_chroma` scales chroma towards neutral by ``min(dark, lift)``: ``dark`` is
1 above ``DARK_CHROMA_HIGH`` visible luminance, 0 below ``DARK_CHROMA_LOW``, linear in between;
``lift = (visible_y + LIFT_EPS) / (fused_y + LIFT_EPS)`` clipped to 1 (the share of the fused
luminance the visible camera saw).
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np


def split_luma(image: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """uint8 BGR or gray -> (Y as float32 in [0, 1], chroma as uint8 HxWx2 or None for gray)."""
    if image.ndim == 2:
        return image.astype(np.float32) * (1.0 / 255.0), None
    ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    return ycrcb[..., 0].astype(np.float32) * (1.0 / 255.0), ycrcb[..., 1:]


DARK_CHROMA_LOW = 0.02
DARK_CHROMA_HIGH = 0.2


LIFT_EPS = 0.02


def attenuate_chroma(chroma: Optional[np.ndarray], visible_y: np.ndarray,
                     fused_y: Optional[np.ndarray] = None, low: float = DARK_CHROMA_LOW,
                     high: float = DARK_CHROMA_HIGH) -> Optional[np.ndarray]:
    """
    Fade chroma (uint8 HxWx2, 128 = neutral) to neutral where the visible view is weak.

    The visible view is weak where ``visible_y`` (0..1) is dark and, given ``fused_y`` (0..1),
    where the fused luminance is above the visible one.
    """
    if chroma is None:
        return None
    weight = (visible_y - np.float32(low)) * np.float32(1.0 / (high - low))
    if fused_y is not None:
        lift = visible_y + np.float32(LIFT_EPS)
        lift /= fused_y + np.float32(LIFT_EPS)
        np.minimum(weight, lift, out=weight)
    if weight.min() >= 1.0:  # a well-lit frame with nothing lifted: nothing to do
        return chroma
    np.clip(weight, 0.0, 1.0, out=weight)
    # one channel at a time on contiguous planes: ~0.9 ms at 640x512, against ~3 ms for the
    # same arithmetic on the interleaved 2-channel view (or for cv2.blendLinear)
    faded = np.empty(chroma.shape, np.uint8)
    for k in range(chroma.shape[2]):
        plane = chroma[..., k].astype(np.float32)
        plane -= 128.0
        plane *= weight
        plane += 128.5
        faded[..., k] = plane
    return faded


def to_uint8(y: np.ndarray) -> np.ndarray:
    return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)


def merge_luma(y: np.ndarray, chroma: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Fused Y in [0, 1] + visible chroma -> (BGR uint8, Y uint8)."""
    y8 = to_uint8(y)
    if chroma is None:
        return cv2.cvtColor(y8, cv2.COLOR_GRAY2BGR), y8
    ycrcb = np.empty(y8.shape + (3,), np.uint8)
    # one channel at a time: numpy copies a 2-channel slice with an inner loop of length 2,
    # about 3x slower than two single-channel copies (5.8 -> 2.0 ms at 640x512)
    ycrcb[..., 0] = y8
    ycrcb[..., 1] = chroma[..., 0]
    ycrcb[..., 2] = chroma[..., 1]
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR), y8
