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
Simulated camera rigs made from registered thermal/visible pairs.

A rig is one homography ``H`` (thermal pixel -> visible pixel) drawn as ``benchmarks/
registration.py`` describes it: a thermal resolution (640x512, 384x288 or 320x256), a thermal
field of 55-85 % of the visible width, the centre shifted by up to 8 %, a rotation of up to 3
degrees and a slight perspective. Every registered pair is turned into what that rig would
record: the visible image resized to 640x480 and the thermal image rendered through ``H`` at the
thermal camera's own resolution (low-pass filtered first where the thermal camera sees less
detail than the registered image holds).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence, Tuple

import cv2
import numpy as np

VISIBLE_SIZE = (640, 480)
THERMAL_SIZES = ((640, 512), (384, 288), (320, 256))


@dataclass(frozen=True)
class Rig:
    homography: np.ndarray          # thermal pixel -> visible pixel (3x3)
    thermal_size: Tuple[int, int]   # (width, height)
    visible_size: Tuple[int, int]
    field: float                    # thermal field as a share of the visible width
    shift: Tuple[float, float]      # centre shift, share of the visible width / height
    rotation_deg: float

    def describe(self) -> str:
        return (f'thermal {self.thermal_size[0]}x{self.thermal_size[1]}, field '
                f'{100 * self.field:.0f} %, shift ({100 * self.shift[0]:+.1f} %, '
                f'{100 * self.shift[1]:+.1f} %), rotation {self.rotation_deg:+.2f} deg')


def rig_homography(thermal_size, visible_size, field: float, shift=(0.0, 0.0),
                   rotation_deg: float = 0.0, perspective=(0.0, 0.0)) -> np.ndarray:
    """Thermal pixel -> visible pixel for a thermal camera of the given field and pose."""
    tw, th = thermal_size
    vw, vh = visible_size
    scale = field * vw / tw
    centre_t = np.array([[1, 0, -(tw - 1) / 2.0], [0, 1, -(th - 1) / 2.0], [0, 0, 1]])
    # slight perspective, in thermal coordinates normalised to half sizes
    px, py = perspective
    persp = np.array([[1, 0, 0], [0, 1, 0], [2 * px / tw, 2 * py / th, 1]])
    a = math.radians(rotation_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    zoom = np.diag([scale, scale, 1.0])
    place = np.array([[1, 0, (vw - 1) / 2.0 + shift[0] * vw],
                      [0, 1, (vh - 1) / 2.0 + shift[1] * vh], [0, 0, 1]])
    h = place @ rot @ zoom @ persp @ centre_t
    return h / h[2, 2]


def random_rig(rng: np.random.Generator, visible_size=VISIBLE_SIZE) -> Rig:
    """Draw one rig as the benchmark does."""
    thermal_size = THERMAL_SIZES[int(rng.integers(len(THERMAL_SIZES)))]
    field = float(rng.uniform(0.55, 0.85))
    shift = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08)))
    rotation = float(rng.uniform(-3.0, 3.0))
    perspective = (float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04)))
    h = rig_homography(thermal_size, visible_size, field, shift, rotation, perspective)
    return Rig(h, thermal_size, tuple(visible_size), field, shift, rotation)


def at_size(image: np.ndarray, size) -> np.ndarray:
    """``image`` resized to ``size`` (w, h) as a registered pair is: area when shrinking."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA
                      if image.shape[1] > size[0] else cv2.INTER_LINEAR)


def render_pair(rig: Rig, thermal: np.ndarray, visible: np.ndarray,
                noise: float = 0.0, rng=None) -> Tuple[np.ndarray, np.ndarray]:
    """One registered pair as ``rig`` records it: (thermal uint8 at its size, visible 640x480)."""
    if visible.shape[1] != rig.visible_size[0] or visible.shape[0] != rig.visible_size[1]:
        visible = at_size(visible, rig.visible_size)
        thermal = at_size(thermal, rig.visible_size)
    # visible pixels per thermal pixel: above 1 the thermal camera is coarser; blur first
    step = math.sqrt(abs(np.linalg.det(rig.homography[:2, :2])))
    source = thermal
    if step > 1.05:
        sigma = 0.5 * math.sqrt(step * step - 1.0)
        source = cv2.GaussianBlur(thermal, (0, 0), sigma)
    out = cv2.warpPerspective(source, rig.homography, tuple(rig.thermal_size),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)
    if noise > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        out = np.clip(out.astype(np.float32) + rng.normal(0, noise, out.shape), 0, 255)
        out = np.rint(out).astype(np.uint8)
    return out, visible


def corner_error(true_h: np.ndarray, estimate: np.ndarray, thermal_size: Sequence[int]) -> float:
    """Mean distance (visible px) between the thermal corners mapped by the two homographies."""
    tw, th = thermal_size
    corners = np.array([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]], np.float64)
    a = cv2.perspectiveTransform(corners[None], np.asarray(true_h, np.float64))[0]
    b = cv2.perspectiveTransform(corners[None], np.asarray(estimate, np.float64))[0]
    return float(np.mean(np.linalg.norm(a - b, axis=1)))
