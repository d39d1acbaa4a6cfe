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
Put the thermal image into the visible camera's frame, at the output resolution.

A 3x3 homography (thermal pixel -> visible pixel) handles cameras that differ in resolution and
field of view; with none set, the two images must have the same size (or, if the config says so,
the thermal image is stretched onto the visible frame). Maps are cached per input geometry, so a
steady stream costs one ``warpPerspective``/``resize`` per camera per frame.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .undistort import Undistortion
from ..config import singular_homography
from ..errors import InputError


class Registration:
    def __init__(self, homography: Optional[Sequence[float]] = None,
                 output_size: Tuple[int, int] = (0, 0), resize_mismatched: bool = False,
                 max_pixels: int = 0):
        self.homography = (np.asarray(homography, dtype=np.float64).reshape(3, 3)
                           if homography is not None and len(homography) == 9 else None)
        if self.homography is not None and singular_homography(self.homography.ravel()):
            raise InputError('registration.homography is singular')
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.resize_mismatched = resize_mismatched
        self.max_pixels = int(max_pixels)  # the output's bound (0: none)
        self._cache_key = None
        self._matrix: Optional[np.ndarray] = None
        self._valid: Optional[np.ndarray] = None
        self.undistort = {'thermal': None, 'visible': None}

    def set_undistortion(self, role: str, undistortion: Optional[Undistortion]) -> None:
        """Undistort ``role``'s images (thermal or visible) before registering them (None: not)."""
        current = self.undistort[role]
        if (current is None) != (undistortion is None) or (
                current is not None and current.key() != undistortion.key()):
            self.undistort[role] = undistortion

    @classmethod
    def from_config(cls, config: dict) -> 'Registration':
        return cls(config['registration.homography'] or None,
                   (config['output.width'], config['output.height']),
                   config['registration.resize_mismatched'], config['limits.max_input_pixels'])

    def out_size(self, visible_shape: Sequence[int]) -> Tuple[int, int]:
        """(width, height) of the output for a visible image of ``visible_shape``."""
        w, h = self.output_size
        return (w or int(visible_shape[1]), h or int(visible_shape[0]))

    def _prepare(self, thermal_shape, visible_shape) -> None:
        key = (thermal_shape[:2], visible_shape[:2])
        if key == self._cache_key:
            return
        w, h = self.out_size(visible_shape)
        if self.max_pixels and w * h > self.max_pixels:
            raise InputError(f'the fused image would be {w}x{h} = {w * h} pixels (output.width/'
                             f'height with a {visible_shape[1]}x{visible_shape[0]} visible '
                             f'frame), more than limits.max_input_pixels={self.max_pixels}')
        if self.homography is None:
            if thermal_shape[:2] != visible_shape[:2] and not self.resize_mismatched:
                raise InputError(
                    f'thermal {thermal_shape[1]}x{thermal_shape[0]} and visible '
                    f'{visible_shape[1]}x{visible_shape[0]} differ in size and '
                    'registration.homography is empty')
            self._matrix, self._valid = None, None
        else:
            scale = np.diag([w / visible_shape[1], h / visible_shape[0], 1.0])
            self._matrix = scale @ self.homography
            ones = np.ones(thermal_shape[:2], np.uint8)
            valid = cv2.warpPerspective(ones, self._matrix, (w, h), flags=cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if not valid.any():
                raise InputError(
                    f'registration.homography maps the {thermal_shape[1]}x{thermal_shape[0]} '
                    f'thermal image entirely outside the {w}x{h} output: nothing of it would '
                    'be fused (check the homography: thermal pixel -> visible pixel)')
            self._valid = valid.astype(bool) if not valid.all() else None
        self._cache_key = key

    def thermal(self, thermal: np.ndarray, visible_shape: Sequence[int]) -> np.ndarray:
        """Thermal image warped or resized into the output frame."""
        if self.undistort['thermal'] is not None:
            thermal = self.undistort['thermal'].apply(thermal)
        self._prepare(thermal.shape, visible_shape)
        size = self.out_size(visible_shape)
        if self._matrix is not None:
            return cv2.warpPerspective(thermal, self._matrix, size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return resize(thermal, size)

    def valid_mask(self) -> Optional[np.ndarray]:
        """Output pixels that the thermal camera sees (None: all of them)."""
        return self._valid

    def visible(self, visible: np.ndarray) -> np.ndarray:
        if self.undistort['visible'] is not None:
            visible = self.undistort['visible'].apply(visible)
        return resize(visible, self.out_size(visible.shape))


def resize(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    shrinking = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking
                      else cv2.INTER_LINEAR)
