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
Warmth in the colour: what is warmer than its surroundings in the thermal image is tinted red.

The fused luminance carries the texture of both cameras (the fusion stages); the colour carries
the visible camera's chroma, faded where the visible view is weak. This step adds the thermal
camera's local warmth to that chroma, as the isotherm or colour-alarm overlays of thermal cameras
do, so warm objects stand out by colour as well as by brightness, by day among a bright visible
texture as much as by night. The luminance is not touched.

With T the registered thermal image in [0, 1] and sigma in pixels at 640 wide (scaled to the
frame), the local warmth is

    w = clip(GAIN * (T - blur_sigma(T)), 0, 1)

and the chroma (uint8, 128 neutral) becomes Cr + a, Cb - a / 2 with a = s * w (s =
``colour.warm_tint``; red-orange), at most what keeps every BGR channel of the pixel within
0..255: a colour the display cannot show would be clipped and change the pixel's brightness, so
near white and near black the tint fades instead, and the fused luminance (what every image
metric of ``sgdfuse evaluate`` scores, as the gray of the BGR image) stays as fused, to the 8-bit
rounding. Where the thermal camera sees nothing (the registration's invalid border) there is no
tint.

Measured (``benchmarks/results/detection.md``): one detector trained on MSRS-128 finds more
warm persons and cars on the tinted fused image than on the visible image, and than on the
thermal image on all frames and by day; by night the thermal image alone is still ahead.
"""

from typing import Optional

import numpy as np

from .images import frame_sigma, smooth

#: local warmth that saturates the tint: a quarter of the thermal range above the surroundings
GAIN = 4.0


class WarmTint:
    """Add the thermal image's local warmth to the chroma planes of the fused image."""

    def __init__(self, strength: float = 0.0, sigma: float = 40.0):
        self.strength = float(strength)
        self.sigma = float(sigma)

    @classmethod
    def from_config(cls, config: dict) -> 'WarmTint':
        return cls(config['colour.warm_tint'], config['colour.warm_tint_sigma'])

    @property
    def active(self) -> bool:
        return self.strength > 0.0

    def warmth(self, thermal: np.ndarray) -> np.ndarray:
        """Local warmth w (float32 HxW in [0, 1]) of a thermal image (float32 in [0, 1])."""
        thermal = np.asarray(thermal, np.float32)
        w = thermal - smooth(thermal, frame_sigma(self.sigma, thermal.shape[1]))
        w *= np.float32(GAIN)
        return np.clip(w, 0.0, 1.0, out=w)

    def __call__(self, chroma: Optional[np.ndarray], thermal: np.ndarray, fused_y: np.ndarray,
                 valid: Optional[np.ndarray] = None) -> np.ndarray:
        """
        Return the tinted chroma (uint8 HxWx2: Cr, Cb) of a frame.

        ``chroma`` None (a gray visible camera) starts from neutral; ``fused_y``: the fused
        luminance (float32 in [0, 1]) the chroma goes with; ``valid``: the output pixels the
        thermal camera sees (None: all).
        """
        h, w = thermal.shape[:2]
        amount = self.warmth(thermal)
        amount *= np.float32(self.strength)
        if valid is not None:
            amount *= valid
        if chroma is None:
            cr = cb = np.zeros((h, w), np.float32)
        else:
            cr = chroma[..., 0].astype(np.float32) - np.float32(128.0)
            cb = chroma[..., 1].astype(np.float32) - np.float32(128.0)
        y = np.clip(np.asarray(fused_y, np.float32) * np.float32(255.0), 0.0, 255.0)
        # OpenCV's YCrCb -> BGR: R = Y + 1.403 Cr, G = Y - 0.714 Cr - 0.344 Cb, B = Y + 1.773 Cb;
        # (Cr + a, Cb - a / 2) raises R by 1.403 a, lowers G by 0.542 a and B by 0.8865 a
        np.minimum(amount, (255.0 - (y + 1.403 * cr)) / 1.403, out=amount)
        np.minimum(amount, (y - 0.714 * cr - 0.344 * cb) / 0.542, out=amount)
        np.minimum(amount, (y + 1.773 * cb) / 0.8865, out=amount)
        np.maximum(amount, 0.0, out=amount)
        out = np.empty((h, w, 2), np.uint8)
        for k, (plane, sign) in enumerate(((cr, 1.0), (cb, -0.5))):
            plane = plane + np.float32(sign) * amount
            plane += np.float32(128.5)
            np.clip(plane, 0.0, 255.0, out=plane)
            out[..., k] = plane
        return out
