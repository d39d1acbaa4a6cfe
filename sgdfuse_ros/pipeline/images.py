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
The images around the networks: camera frames into their domain, the fused luminance out of it.

In, every frame (``FusionPipeline.process`` calls them in this order):

- **encodings**: ROS image encodings checked (:func:`check_size`); thermal frames become float32
  luminance in [0, 1] by automatic gain control (:class:`ThermalAGC`), visible frames uint8 BGR
  (or uint8 gray for mono cameras, :func:`visible_to_bgr`). Every failure is an
  :class:`~sgdfuse_ros.errors.InputError` with a one-line message.
- **registration** (:class:`Registration`): the thermal image put into the visible camera's
  frame, at the output resolution. A 3x3 homography (thermal pixel -> visible pixel) handles
  cameras that differ in resolution and field of view; with none set, the two images must have
  the same size (or, if the config says so, the thermal image is stretched onto the visible
  frame). Maps are cached per input geometry, so a steady stream costs one
  ``warpPerspective``/``resize`` per camera per frame. With ``registration.undistort`` each
  camera's lens distortion is undone first (:func:`undistort_cameras` hands the registration
  each camera's :class:`~sgdfuse_ros.pipeline.undistort.Undistortion`).
- **luminance** (:func:`split_luma`): the networks fuse luminance.

Out: the fused luminance gets the visible camera's colour back (:func:`merge_luma`). The
visible frame is split into luminance and chroma (YCrCb, BT.601 as OpenCV defines it: the same
weights as the gray conversion the fusion metrics use); the fused luminance replaces Y.

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

from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from .undistort import Undistortion
from ..config import singular_homography
from ..errors import InputError
from ..messages import IMAGE_LAYOUT


# --- encodings and thermal AGC -------------------------------------------------------------------

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


# --- registration -------------------------------------------------------------------------------

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


def undistort_cameras(registration, thermal_info, visible_info,
                      enabled: bool) -> Tuple[bool, Dict[str, str]]:
    """
    Give ``registration`` (a :class:`Registration`) each camera's undistortion (or none).

    ``enabled`` is ``registration.undistort``; the infos are the latest CameraInfo messages (or
    None). Returns (whether the visible image is undistorted, {role: why its camera_info could
    not be used}); a camera whose info cannot be used is registered as it comes.
    """
    problems: Dict[str, str] = {}
    visible = False
    if registration is None or not hasattr(registration, 'set_undistortion'):
        return False, problems
    for role, info in (('thermal', thermal_info), ('visible', visible_info)):
        try:
            undistortion = Undistortion.from_info(info) if enabled else None
        except InputError as err:
            problems[role] = str(err)
            undistortion = None
        registration.set_undistortion(role, undistortion)
        visible = visible or (role == 'visible' and undistortion is not None)
    return visible, problems


def resize(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    shrinking = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking
                      else cv2.INTER_LINEAR)


# --- luminance and colour -----------------------------------------------------------------------

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


# --- quiet background (for detectors) -----------------------------------------------------------

#: pixel sizes of the ``background.*`` and ``colour.*`` parameters are given at this image
#: width and scaled with the frame
SIZE_WORK_WIDTH = 640


def frame_sigma(sigma: float, width: int) -> float:
    """Return a Gaussian sigma given at :data:`SIZE_WORK_WIDTH` for a frame ``width`` wide."""
    return max(0.5, sigma * width / SIZE_WORK_WIDTH)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """
    Gaussian blur of a float32 image with ``sigma`` (pixels), bounded in cost for wide sigmas.

    Below sigma 8 it is ``cv2.GaussianBlur``; from 8 on, the image is shrunk by k = sigma // 4
    (area average), blurred with sigma / k and enlarged back (bilinear): the same low-pass
    within a few thousandths of the range, at a small fraction of the cost (a 640x512 frame with
    sigma 16: about 3 instead of 40 ms).
    """
    k = int(sigma // 4)
    if k < 2:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class QuietBackground:
    """
    Give a detector the thermal image's quiet surroundings, optionally, after the fusion stages.

    A small detector finds small warm persons on the thermal image that it misses on the fused
    one, where they stand in the visible camera's texture
    (``benchmarks/results/detection_4epochs.md``).
    Two independent steps on the fused luminance (float32 [0, 1]); both off by default:

    - ``detail_gain`` g < 1: the fused image's detail finer than ``detail_sigma`` (Gaussian
      sigma, pixels at 640 wide) is replaced, by the share 1 - g, with the thermal image's
      detail at the same scale: ``F - (1 - g) * ((F - blur F) - (T - blur T))``. Brightness and
      larger shapes stay as fused.
    - ``radius`` r > 0: within r pixels (at 640 wide) of the prior's warm targets, the fused
      luminance follows the thermal image (soft edge, about r / 2 wide):
      ``w T + (1 - w) F``, w = 1 on the targets and their surroundings.
    """

    def __init__(self, radius: float = 0.0, detail_gain: float = 1.0,
                 detail_sigma: float = 16.0):
        self.radius = float(radius)
        self.detail_gain = float(detail_gain)
        self.detail_sigma = float(detail_sigma)

    @classmethod
    def from_config(cls, config: dict) -> 'QuietBackground':
        return cls(config['background.target_radius'], config['background.detail_gain'],
                   config['background.detail_sigma'])

    @property
    def active(self) -> bool:
        return self.radius > 0 or self.detail_gain < 1.0

    def weight(self, targets: np.ndarray) -> np.ndarray:
        """Soft mask (float32 [0, 1]): 1 on the warm targets and within the radius around them."""
        scale = targets.shape[1] / SIZE_WORK_WIDTH
        r = max(1, int(round(self.radius * scale)))
        core = (targets > 0.5).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        grown = cv2.dilate(core, kernel).astype(np.float32)
        soft = smooth(grown, max(0.5, r / 2.0))
        # the blur lowers the edge of the grown region: lift so the dilated border is ~1
        np.minimum(soft * 2.0, 1.0, out=soft)
        return np.maximum(soft, np.clip(targets, 0.0, 1.0)).astype(np.float32)

    def __call__(self, fused: np.ndarray, thermal: np.ndarray,
                 targets: Optional[np.ndarray]) -> np.ndarray:
        """Return the fused luminance with a quieter background (``fused`` itself when off)."""
        if not self.active:
            return fused
        out = fused.astype(np.float32, copy=True)
        t = thermal.astype(np.float32, copy=False)
        if self.detail_gain < 1.0:
            # (F - blur F) - (T - blur T) = D - blur D with D = F - T: one blur, not two
            sigma = frame_sigma(self.detail_sigma, fused.shape[1])
            diff = out - t
            diff -= smooth(diff, sigma)
            diff *= np.float32(1.0 - self.detail_gain)
            out -= diff
        if self.radius > 0 and targets is not None and targets.any():
            w = self.weight(targets)
            out += w * (t - out)
        np.clip(out, 0.0, 1.0, out=out)
        return out
