# noqa: A005  (sgdfuse_ros.pipeline.encodings is public API and shadows nothing when imported)
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
Camera frames in, normalised arrays out: ROS image encodings and thermal automatic gain control.

Thermal frames become float32 luminance in [0, 1]; visible frames become uint8 BGR (or uint8
gray for mono cameras). Every failure is an :class:`InputError` with a one-line message.
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from ..errors import InputError
from ..messages import IMAGE_LAYOUT

THERMAL_ENCODINGS = ('mono8', '8UC1', 'mono16', '16UC1', '32FC1')
VISIBLE_ENCODINGS = ('bgr8', 'rgb8', 'mono8', 'bgra8', 'rgba8')


def infer_thermal_encoding(image: np.ndarray) -> str:
    if image.ndim != 2:
        raise InputError(f'thermal frame must be single-channel, got shape {image.shape}')
    kinds = {np.dtype(np.uint8): 'mono8', np.dtype(np.uint16): 'mono16',
             np.dtype(np.float32): '32FC1', np.dtype(np.float64): '32FC1'}
    if image.dtype not in kinds:
        raise InputError(f'thermal frame has unsupported dtype {image.dtype}')
    return kinds[image.dtype]


def infer_visible_encoding(image: np.ndarray) -> str:
    if image.dtype != np.uint8:
        raise InputError(f'visible frame must be 8-bit, got dtype {image.dtype}')
    if image.ndim == 2:
        return 'mono8'
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return 'bgr8' if image.shape[2] == 3 else 'bgra8'
    raise InputError(f'visible frame has unsupported shape {image.shape}')


def check_size(image: np.ndarray, what: str, max_pixels: int) -> None:
    if image.ndim < 2:
        raise InputError(f'{what} frame is not an image (shape {image.shape}; expected HxW or '
                         'HxWxC)')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f'{what} frame is empty (shape {image.shape})')
    pixels = image.shape[0] * image.shape[1]
    if pixels > max_pixels:
        raise InputError(f'{what} frame {image.shape[1]}x{image.shape[0]} exceeds '
                         f'limits.max_input_pixels={max_pixels}')


class ThermalAGC:
    """
    Map raw thermal frames (mono8, mono16/16UC1, 32FC1) to float32 in [0, 1].

    The window is a pair of robust percentiles of the finite pixels, widened to at least
    ``min_span`` raw units (so a constant frame maps to mid-grey instead of amplified noise),
    optionally smoothed over time. Non-finite pixels become black (coldest).
    """

    def __init__(self, mode: str = 'auto', low: float = 1.0, high: float = 99.0,
                 min_span: float = 16.0, smoothing: float = 0.0, fixed_min: float = 0.0,
                 fixed_max: float = 1.0, sample_stride: int = 4):
        self.mode = mode
        self.low, self.high = float(low), float(high)
        self.min_span = float(min_span)
        self.smoothing = float(smoothing)
        self.fixed = (float(fixed_min), float(fixed_max))
        self.stride = max(1, int(sample_stride))
        self._window: Optional[Tuple[float, float]] = None

    @classmethod
    def from_config(cls, config: dict) -> 'ThermalAGC':
        return cls(config['agc.mode'], config['agc.low_percentile'],
                   config['agc.high_percentile'], config['agc.min_span'],
                   config['agc.smoothing'], config['agc.fixed_min'], config['agc.fixed_max'])

    def reset(self) -> None:
        self._window = None

    def window(self, image: np.ndarray) -> Tuple[float, float]:
        sample = image[:: self.stride, :: self.stride]
        if sample.dtype.kind == 'f':
            finite = np.isfinite(sample)
            if not finite.all():
                sample = sample[finite]
                if sample.size == 0:
                    sample = image[np.isfinite(image)]
            if sample.size == 0:
                raise InputError('thermal frame has no finite pixels')
        lo, hi = np.percentile(sample, (self.low, self.high))
        lo, hi = float(lo), float(hi)
        if hi - lo < self.min_span:
            mid = 0.5 * (lo + hi)
            lo, hi = mid - 0.5 * self.min_span, mid + 0.5 * self.min_span
        if hi <= lo:  # min_span == 0 on a constant frame
            lo, hi = lo - 0.5, lo + 0.5
        if self.smoothing > 0 and self._window is not None:
            s = self.smoothing
            lo = s * self._window[0] + (1 - s) * lo
            hi = s * self._window[1] + (1 - s) * hi
        self._window = (lo, hi)
        return lo, hi

    def __call__(self, image: np.ndarray, encoding: Optional[str] = None) -> np.ndarray:
        encoding = encoding or infer_thermal_encoding(image)
        if encoding not in THERMAL_ENCODINGS:
            raise InputError(f"unsupported thermal encoding '{encoding}' "
                             f"(expected one of {', '.join(THERMAL_ENCODINGS)})")
        if image.ndim != 2:
            raise InputError(f'thermal frame must be single-channel, got shape {image.shape}')
        expected = np.dtype(IMAGE_LAYOUT[encoding][0])
        native = image.dtype.newbyteorder('=')  # big-endian arrays are fine, astype swaps them
        if native != expected and not (encoding == '32FC1' and native == np.float64):
            raise InputError(f'thermal frame of dtype {image.dtype} does not match encoding '
                             f"'{encoding}' ({expected})")
        eight_bit = encoding in ('mono8', '8UC1')
        if self.mode == 'off' or (self.mode == 'auto' and eight_bit):
            if eight_bit:
                return image.astype(np.float32) * (1.0 / 255.0)
            if encoding in ('mono16', '16UC1'):
                return image.astype(np.float32) * (1.0 / 65535.0)
            lo, hi = self.fixed
        else:
            lo, hi = self.window(image)
        scale = 1.0 / (hi - lo)
        out = image.astype(np.float32)  # one float buffer, then in place (same arithmetic)
        out -= np.float32(lo)
        out *= np.float32(scale)
        if out.dtype.kind == 'f' and image.dtype.kind == 'f':
            out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(out, 0.0, 1.0, out=out)
        return out


def visible_to_bgr(image: np.ndarray, encoding: Optional[str] = None) -> Tuple[np.ndarray, bool]:
    """Visible frame -> (uint8 image, is_colour). Colour comes back BGR, mono stays 2-D."""
    encoding = encoding or infer_visible_encoding(image)
    if encoding not in VISIBLE_ENCODINGS:
        raise InputError(f"unsupported visible encoding '{encoding}' "
                         f"(expected one of {', '.join(VISIBLE_ENCODINGS)})")
    dtype, channels = IMAGE_LAYOUT[encoding]
    shape_ok = (image.ndim == 2) if channels == 1 else (image.ndim == 3
                                                        and image.shape[2] == channels)
    if image.dtype != dtype or not shape_ok:
        raise InputError(f'visible frame of shape {image.shape} and dtype {image.dtype} does '
                         f"not match encoding '{encoding}'")
    if encoding == 'mono8':
        return image, False
    if encoding == 'bgr8':
        return image, True
    code = {'rgb8': cv2.COLOR_RGB2BGR, 'bgra8': cv2.COLOR_BGRA2BGR,
            'rgba8': cv2.COLOR_RGBA2BGR}[encoding]
    return cv2.cvtColor(image, code), True
