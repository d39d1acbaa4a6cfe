"""Fuse on luminance, keep the visible camera's colour.

The visible frame is split into luminance and chroma (YCrCb, BT.601 as OpenCV defines it: the
same weights as the gray conversion the fusion metrics use); the fused luminance replaces Y.
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
