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
Undo each camera's lens distortion with the coefficients of its ``sensor_msgs/CameraInfo``.

A homography maps one plane through two pinhole cameras; a lens that bends straight lines (most
wide or cheap lenses, and many thermal cores) breaks that at the image borders. With
``registration.undistort`` the node (and ``sgdfuse register``/``replay``) remaps each camera's
image to the undistorted pinhole image of the same intrinsics ``K`` before registration, when
that camera's camera_info has non-zero distortion coefficients. Models: ``plumb_bob`` and
``rational_polynomial`` (OpenCV's 4, 5, 8, 12 or 14 coefficients) and ``equidistant`` (fisheye,
4 coefficients). A camera_info of another size than the image is scaled to it (binning or a
resized stream); the maps are built once per (size, coefficients).
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from ..errors import InputError

PINHOLE_MODELS = ('plumb_bob', 'rational_polynomial', '')
FISHEYE_MODELS = ('equidistant', 'fisheye')


def _numbers(value) -> np.ndarray:
    """Return a message's float array (numpy array, list, array.array or None), flat."""
    return np.zeros(0) if value is None else np.asarray(value, np.float64).ravel()


class Undistortion:
    """The undistortion of one camera (``K``, ``D``, model, the calibrated image size)."""

    def __init__(self, k, d, model: str = 'plumb_bob', size: Tuple[int, int] = (0, 0)):
        self.k = np.asarray(k, np.float64).reshape(3, 3)
        self.d = np.asarray(d, np.float64).ravel()
        self.model = str(model or '').strip().lower()
        self.size = (int(size[0]), int(size[1]))   # (width, height) the calibration is for
        if self.model not in PINHOLE_MODELS + FISHEYE_MODELS:
            raise InputError(f'camera_info distortion model {model!r} is not one of '
                             f'{", ".join(m for m in PINHOLE_MODELS + FISHEYE_MODELS if m)}')
        if not np.all(np.isfinite(self.k)) or not np.all(np.isfinite(self.d)):
            raise InputError('camera_info K or D holds a NaN or an infinity')
        if self.k[0, 0] <= 0 or self.k[1, 1] <= 0:
            raise InputError('camera_info K has no focal length (uncalibrated camera)')
        if self.model in FISHEYE_MODELS and self.d.size != 4:
            raise InputError(f'an equidistant camera_info needs 4 coefficients, got {self.d.size}')
        if self.model in PINHOLE_MODELS and self.d.size not in (4, 5, 8, 12, 14):
            raise InputError(f'camera_info D has {self.d.size} coefficients (4, 5, 8, 12 or 14)')
        self._key = None
        self._maps = None

    @classmethod
    def from_info(cls, info) -> Optional['Undistortion']:
        """
        Build it from a CameraInfo message (anything with k, d, distortion_model, width, height).

        None when it has nothing to undo: no distortion coefficients, all zero, or no focal
        length (an uncalibrated camera publishes zeros).
        """
        if info is None:
            return None
        d, k = _numbers(getattr(info, 'd', None)), _numbers(getattr(info, 'k', None))
        if d.size == 0 or not np.any(d != 0) or k.size != 9 or k[0] <= 0 or k[4] <= 0:
            return None
        return cls(k, d, getattr(info, 'distortion_model', 'plumb_bob'),
                   (int(getattr(info, 'width', 0)), int(getattr(info, 'height', 0))))

    def key(self) -> tuple:
        return (self.model, tuple(self.k.ravel()), tuple(self.d), self.size)

    def camera_matrix(self, width: int, height: int) -> np.ndarray:
        """Return K for a ``width`` x ``height`` image (scaled from the calibrated size)."""
        k = self.k.copy()
        cw, ch = self.size
        if cw > 0 and ch > 0 and (cw, ch) != (width, height):
            sx, sy = width / cw, height / ch
            k[0, :] *= sx
            k[1, :] *= sy
            k[0, 2] = (self.k[0, 2] + 0.5) * sx - 0.5   # pixel centres, as cv2.resize
            k[1, 2] = (self.k[1, 2] + 0.5) * sy - 0.5
        return k

    def maps(self, width: int, height: int):
        if self._key != (width, height):
            k = self.camera_matrix(width, height)
            if self.model in FISHEYE_MODELS:
                m1, m2 = cv2.fisheye.initUndistortRectifyMap(k, self.d, np.eye(3), k,
                                                             (width, height), cv2.CV_32FC1)
            else:
                m1, m2 = cv2.initUndistortRectifyMap(k, self.d, None, k, (width, height),
                                                     cv2.CV_32FC1)
            self._maps, self._key = (m1, m2), (width, height)
        return self._maps

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Return the undistorted image (same size and K; beyond the lens: edge pixels)."""
        m1, m2 = self.maps(image.shape[1], image.shape[0])
        return cv2.remap(image, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def distort(self, image: np.ndarray) -> np.ndarray:
        """Return what this lens makes of a pinhole image (the inverse; tests, simulations)."""
        h, w = image.shape[:2]
        k = self.camera_matrix(w, h)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        pts = np.stack([xs.ravel(), ys.ravel()], axis=1)[:, None, :]
        if self.model in FISHEYE_MODELS:
            und = cv2.fisheye.undistortPoints(pts, k, self.d, P=k)
        else:
            und = cv2.undistortPoints(pts, k, self.d, None, k)
        und = und.reshape(h, w, 2)
        return cv2.remap(image, und[..., 0], und[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
