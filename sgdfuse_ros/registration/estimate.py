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
One thermal -> visible homography from many frames of one rig, without a target or labels.

Thermal and visible images share edges (object outlines, horizon, road borders) but not their
intensities, so everything here works on *edge maps*: the gradient magnitude of each image,
normalised by its local average so that faint thermal edges count as much as bright visible ones.

1. **Global search** (scale, rotation, translation): at a coarse resolution, the central part of
   each thermal edge map, scaled to a candidate field of view and rotated, is correlated with the
   visible edge map at every position (``cv2.matchTemplate``, normalised cross-correlation, FFT
   based); the correlation surfaces of all frames are summed, and the best peak over all scales
   and rotations wins. One frame's peak can be a coincidence; the sum over frames of one rig is
   not.
2. **Joint refinement** (full homography, 8 parameters): the distinct best peaks are refined at
   the coarsest level, the best four of them once more one level finer, and the one whose edges
   agree best there is kept; then the enhanced correlation coefficient (ECC, Evangelidis and
   Psarakis 2008; OpenCV's ``findTransformECC``) maximised over all frames at once - the
   frames' edge maps are concatenated, each normalised to unit energy - coarse to fine (visible
   widths 160, 320, 640). The finer levels correlate the square root of edge maps smoothed over
   2 pixels per 640 (:func:`refine_map`); last, the finest level once more on the gradients'
   orientations (:func:`orientation_maps`: edges count where they run the same way in both
   cameras, whichever side is brighter).
3. **Confidence**: the same refinement on the frames with one group left out, five times (for
   fewer than three frames: one quarter of the image left out); the spread of the thermal
   corners over those estimates (jackknife standard error, visible pixels; on the edge maps and
   on the orientations of the finest level, the larger) is the figure reported, and the
   registration is refused when it is large, when a distant placement fits about as well as the
   best one, or when the images have no edges to match. The figure
   measures how much the frames disagree; a bias they all share (e.g. one depth plane of a
   scene with strong parallax) does not show in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import InputError

SEARCH_WIDTH = 160             # visible width of the global search (pixels)
LEVEL_WIDTHS = (160, 320, 640)  # visible widths of the refinement levels
FIELD_RANGE = (0.3, 1.0)       # thermal field searched, as a share of the visible width
FIELD_STEP = 1.04              # ratio between neighbouring candidate fields
ROTATIONS = (-2.0, 0.0, 2.0)  # degrees
TEMPLATE_SHARE = 0.7           # central part of the thermal edge map used in the search
PAD_SHARE = 0.15               # visible edge map padded by this share of its width
MIN_MARGIN = 0.01               # best hypothesis' correlation above the runner-up's
# registered edge maps must agree at least this much: thermal and visible frames of unrelated
# scenes reach about 0.09, the accepted rigs of benchmarks/registration.py 0.21 (MSRS night) to
# 0.51; below it the estimate is refused whatever its spread over frame subsets says
MIN_CORRELATION = 0.15
RIVAL_DISTANCE = 0.08          # a rival placement: a corner this share of the width away
HYPOTHESES = 8                 # distinct search peaks refined at the coarsest level
SECOND_LOOK = 4                # of those, the best refined once more at the next level
MAX_FRAMES = 24                # frames used by the refinement (the best-textured, spread out)
MAX_SEARCH_FRAMES = 60         # frames used by the global search
LEVEL_ITERATIONS = 30          # ECC iterations per refinement level (at most)
LEVEL_TOL = 0.03               # stop when no corner moves more (level pixels)
FINE_SIGMA = 2.0               # edge smoothing of the finer levels, pixels per 640 visible px
ORIENTATION_SIGMA = 2.0        # last level: smoothing of the orientation fields, same units


class RegistrationRefused(InputError):
    """The frames do not determine a homography reliably (the message says why)."""


@dataclass
class Estimate:
    homography: np.ndarray           # thermal pixel -> visible pixel (3x3, [2, 2] = 1)
    thermal_size: Tuple[int, int]
    visible_size: Tuple[int, int]
    frames_used: int
    frames_given: int
    uncertainty_px: float            # jackknife standard error of the corners (visible px)
    correlation: float               # mean ECC correlation of the frames at the solution
    peak_contrast: float             # global search: best peak vs the runner-up elsewhere
    field: float                     # thermal field as a share of the visible width
    notes: List[str] = field(default_factory=list)
    refusal: Optional[str] = None    # why it would be refused (``estimate(refuse=False)``)
    margin: float = 1.0              # correlation of the best hypothesis minus the runner-up's

    def corners(self) -> np.ndarray:
        return thermal_corners(self.homography, self.thermal_size)

    @property
    def confidence(self) -> str:
        ref = self.visible_size[0] / 640.0
        if self.uncertainty_px <= 0.75 * ref:
            return 'high'
        if self.uncertainty_px <= 2.0 * ref:
            return 'medium'
        return 'low'


def thermal_corners(h: np.ndarray, thermal_size) -> np.ndarray:
    tw, th = thermal_size
    pts = np.array([[[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]]], np.float64)
    return cv2.perspectiveTransform(pts, np.asarray(h, np.float64))[0]


# --- edge maps -----------------------------------------------------------------------------------

def to_gray_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16/float, 1 or 3 channels -> float32 grey in [0, 1] (floats kept as they are)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
    if image.dtype == np.uint8:
        return image.astype(np.float32) * (1.0 / 255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * (1.0 / 65535.0)
    return image.astype(np.float32)


def edge_map(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gradient magnitude, normalised by its local mean (faint and strong edges alike)."""
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma) if sigma > 0 else gray
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    size = max(3, int(max(gray.shape) / 4) | 1)
    local = cv2.blur(mag, (size, size), borderType=cv2.BORDER_REFLECT_101)
    floor = 0.25 * float(mag.mean()) + 1e-6
    return mag / (local + floor)


def refine_map(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """
    Return the edge map of the finer refinement levels: the square root of :func:`edge_map`.

    Compressed, the few strongest edges of a frame weigh less against the many weaker ones, and
    with the wider smoothing the caller gives it the correlation's maximum lies closer to the
    true placement (measured on the train splits: ``benchmarks/results/registration.md``).
    """
    return np.sqrt(edge_map(gray, sigma))


def orientation_maps(gray: np.ndarray, sigma: float = 1.0,
                     spread: float = 1.0) -> List[np.ndarray]:
    """
    Return the two orientation fields of the last refinement level: ``w cos 2a``, ``w sin 2a``.

    ``a`` is the gradient's angle, doubled so that an edge that is bright-to-dark in one camera
    and dark-to-bright in the other (thermal and visible contrast often run opposite) gives the
    same field; ``w`` is the :func:`refine_map` weight. Both fields are smoothed over ``spread``
    pixels (a structure tensor's off-diagonal terms). Correlated with the other camera's fields
    they sum ``w w' cos 2(a - a')``: edges count where they run the same way, not only where
    both images have some gradient (measured on the train splits: ``benchmarks/results/
    registration.md``).
    """
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma) if sigma > 0 else gray
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    weight = np.sqrt(edge_map(gray, sigma))
    energy = gx * gx + gy * gy + 1e-12
    cos2 = weight * (gx * gx - gy * gy) / energy
    sin2 = weight * (2.0 * gx * gy) / energy
    return [cv2.GaussianBlur(cos2, (0, 0), spread), cv2.GaussianBlur(sin2, (0, 0), spread)]


def texture(gray: np.ndarray) -> float:
    """Median gradient magnitude of a frame (grey levels per pixel at 320 wide)."""
    small = resize_to_width(gray, 320)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return float(np.mean(cv2.magnitude(gx, gy))) * 255.0


def resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if w == width:
        return image
    height = max(8, int(round(h * width / w)))
    return cv2.resize(image, (int(width), height),
                      interpolation=cv2.INTER_AREA if width < w else cv2.INTER_LINEAR)


def resize_factor(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(8, int(round(w * factor))), max(8, int(round(h * factor))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1
                      else cv2.INTER_LINEAR)


def pixel_scale(sx: float, sy: float) -> np.ndarray:
    """Pixel-centre convention of cv2.resize: x' = (x + 0.5) s - 0.5."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def scale_between(src_shape, dst_shape) -> np.ndarray:
    return pixel_scale(dst_shape[1] / src_shape[1], dst_shape[0] / src_shape[0])


# --- 1. global search ----------------------------------------------------------------------------

@dataclass
class SearchResult:
    homography: np.ndarray   # thermal px -> visible px (similarity)
    field: float
    rotation: float
    score: float             # summed correlation / frames at the peak
    peak_contrast: float     # (peak - runner-up away from it) / spread of the surface
    frames_agreeing: float   # share of frames whose own best position is near the joint peak
    candidates: List[np.ndarray] = field(default_factory=list)  # distinct peaks, best first


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    if degrees == 0:
        return image
    h, w = image.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def global_search(thermals: Sequence[np.ndarray], visibles: Sequence[np.ndarray],
                  field_range=FIELD_RANGE, rotations=ROTATIONS,
                  progress: Optional[Callable[[], None]] = None) -> SearchResult:
    vh, vw = visibles[0].shape[:2]
    th, tw = thermals[0].shape[:2]
    pad = int(round(PAD_SHARE * SEARCH_WIDTH))
    vis_maps = []
    for vis in visibles:
        small = resize_to_width(vis, SEARCH_WIDTH)
        vis_maps.append(cv2.copyMakeBorder(edge_map(small, 1.0), pad, pad, pad, pad,
                                           cv2.BORDER_CONSTANT, value=0))
    n_fields = int(math.ceil(math.log(field_range[1] / field_range[0]) / math.log(FIELD_STEP)))
    fields = field_range[0] * FIELD_STEP ** np.arange(n_fields + 1)
    peaks = []   # (peak, field, angle, loc, surface, per-frame surfaces, sizes, crop)
    for fld in fields:
        factor = fld * SEARCH_WIDTH / tw      # thermal px -> search px
        scaled = [edge_map(resize_factor(t, factor), 1.0) for t in thermals]
        sh, sw = scaled[0].shape
        ch, cw = int(round(sh * TEMPLATE_SHARE)), int(round(sw * TEMPLATE_SHARE))
        y0, x0 = (sh - ch) // 2, (sw - cw) // 2
        if ch < 8 or cw < 8 or ch >= vis_maps[0].shape[0] or cw >= vis_maps[0].shape[1]:
            continue
        for angle in rotations:
            total, per_frame = None, []
            for t, v in zip(scaled, vis_maps):
                tpl = _rotate(t, angle)[y0:y0 + ch, x0:x0 + cw]
                surface = cv2.matchTemplate(v, tpl, cv2.TM_CCOEFF_NORMED)
                surface = np.nan_to_num(surface, nan=0.0, posinf=0.0, neginf=0.0)
                total = surface if total is None else total + surface
                per_frame.append(surface)
            total /= len(scaled)
            _, peak, _, loc = cv2.minMaxLoc(total)
            peaks.append((peak, fld, angle, loc, total, per_frame, (sw, sh), (x0, y0, cw, ch)))
        if progress is not None:
            progress()
    if not peaks:
        raise RegistrationRefused('the images are too small to search for the thermal field')
    peaks.sort(key=lambda item: -item[0])
    geometry = (pad, vh, vw, th, tw, vis_maps[0].shape[0] - 2 * pad)
    candidates: List[np.ndarray] = []
    for item in peaks:
        h = _similarity(item, geometry)
        if all(np.abs(thermal_corners(h, (tw, th)) - thermal_corners(c, (tw, th))).max()
               > 0.04 * vw for c in candidates):
            candidates.append(h)
        if len(candidates) >= HYPOTHESES:
            break
    peak, fld, angle, loc, total, per_frame, (sw, sh), (x0, y0, cw, ch) = peaks[0]
    radius = max(3, int(round(0.06 * SEARCH_WIDTH)))
    masked = total.copy()
    cv2.circle(masked, loc, radius, float(total.min()), -1)
    runner_up = float(masked.max())
    spread = float(total.std()) + 1e-9
    agreeing = 0
    for surface in per_frame:
        _, _, _, own = cv2.minMaxLoc(surface)
        agreeing += math.hypot(own[0] - loc[0], own[1] - loc[1]) <= radius
    h = candidates[0]
    return SearchResult(h, float(fld), float(angle), float(peak),
                        float((peak - runner_up) / spread), agreeing / len(per_frame), candidates)


def _similarity(item, geometry) -> np.ndarray:
    """Return the thermal px -> visible px similarity of one search peak."""
    peak, fld, angle, loc, total, per_frame, (sw, sh), (x0, y0, cw, ch) = item
    pad, vh, vw, th, tw, search_h = geometry
    # the template's centre in search pixels; the crop is centred on the scaled thermal's centre
    # only up to rounding
    centre = np.array([loc[0] + (cw - 1) / 2.0 - pad, loc[1] + (ch - 1) / 2.0 - pad])
    centre -= np.array([x0 + (cw - 1) / 2.0 - (sw - 1) / 2.0,
                        y0 + (ch - 1) / 2.0 - (sh - 1) / 2.0])
    to_vis = np.linalg.inv(scale_between((vh, vw), (search_h, SEARCH_WIDTH)))
    centre_vis = (to_vis @ np.array([centre[0], centre[1], 1.0]))[:2]
    scale = fld * vw / tw
    a = math.radians(-angle)  # cv2 rotation angles are counter-clockwise in image terms
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * scale
    h = np.eye(3)
    h[:2, :2] = rot
    h[:2, 2] = centre_vis - rot @ np.array([(tw - 1) / 2.0, (th - 1) / 2.0])
    return h


# --- 2. joint refinement (multi-frame ECC) -------------------------------------------------------

def _normaliser(width: int, height: int) -> np.ndarray:
    c = max(width, height) / 2.0
    return np.array([[1 / c, 0, -(width - 1) / (2 * c)], [0, 1 / c, -(height - 1) / (2 * c)],
                     [0, 0, 1.0]])


class _Level:
    """
    Feature maps of all frames at one resolution, and the ECC iterations on them.

    ``kind``: ``'edges'`` (:func:`edge_map`, the coarsest level), ``'fine'`` (:func:`refine_map`,
    the finer levels) or ``'orientation'`` (:func:`orientation_maps`, two maps per frame, the
    last level).
    """

    def __init__(self, thermals, visibles, h: np.ndarray, vis_width: int, stride: int = 1,
                 fine: bool = False, kind: Optional[str] = None):
        vh, vw = visibles[0].shape[:2]
        th, tw = thermals[0].shape[:2]
        width = min(vis_width, vw)
        kv = width / vw
        kind = kind or ('fine' if fine else 'edges')
        if kind == 'orientation':
            sigma = max(1.0, FINE_SIGMA * width / 640.0)
            spread = max(1.0, ORIENTATION_SIGMA * width / 640.0)

            def features(image):
                return orientation_maps(image, sigma, spread)
        else:
            # the finer levels: wider edges, strong ones compressed (see refine_map)
            one = refine_map if kind == 'fine' else edge_map
            sigma = max(1.0, FINE_SIGMA * width / 640.0) if kind == 'fine' else 1.0

            def features(image):
                return [one(image, sigma)]
        # every frame gives ``channels`` maps, stored frame after frame
        self.vis = [m for v in visibles for m in features(resize_to_width(v, width))]
        self.channels = len(self.vis) // len(visibles)
        self.frames = len(visibles)
        self.vis_k = scale_between((vh, vw), self.vis[0].shape)
        # thermal grid at about one level pixel per thermal pixel (never above native)
        step = math.sqrt(abs(np.linalg.det(h[:2, :2]))) * kv
        factor = min(1.0, step)
        self.tpl = [m for t in thermals for m in features(resize_factor(t, factor))]
        self.tpl_k = scale_between((th, tw), self.tpl[0].shape)
        gh, gw = self.tpl[0].shape
        self.grid_shape = (gh, gw)
        ys, xs = np.mgrid[0:gh:stride, 0:gw:stride]
        self.grid = (xs.astype(np.float64), ys.astype(np.float64))
        self.tpl = [t[::stride, ::stride] for t in self.tpl]
        self.vgrad = []
        for v in self.vis:
            gx = cv2.Sobel(v, cv2.CV_32F, 1, 0, ksize=3) / 8.0
            gy = cv2.Sobel(v, cv2.CV_32F, 0, 1, ksize=3) / 8.0
            self.vgrad.append((gx, gy))
        vhl, vwl = self.vis[0].shape
        self.nt = _normaliser(gw, gh)
        self.nv = _normaliser(vwl, vhl)
        self.vis_size = (vwl, vhl)

    def to_normalised(self, h: np.ndarray) -> np.ndarray:
        hl = self.vis_k @ h @ np.linalg.inv(self.tpl_k)
        hn = self.nv @ hl @ np.linalg.inv(self.nt)
        return hn / hn[2, 2]

    def from_normalised(self, hn: np.ndarray) -> np.ndarray:
        hl = np.linalg.inv(self.nv) @ hn @ self.nt
        h = np.linalg.inv(self.vis_k) @ hl @ self.tpl_k
        return h / h[2, 2]

    def run(self, h: np.ndarray, frames: Optional[Sequence[int]] = None, iterations: int = 30,
            drop: Optional[np.ndarray] = None, tol: float = 0.03) -> Tuple[np.ndarray, float]:
        """ECC over the chosen frames from ``h``; returns (h, mean correlation of their maps)."""
        frames = list(range(self.frames)) if frames is None else list(frames)
        maps = [f * self.channels + c for f in frames for c in range(self.channels)]
        hn = self.to_normalised(h)
        xs, ys = self.grid
        xn = self.nt[0, 0] * xs + self.nt[0, 2]
        yn = self.nt[1, 1] * ys + self.nt[1, 2]
        x32, y32 = xn.astype(np.float32), yn.astype(np.float32)
        vwl, vhl = self.vis_size
        cv_ = 1.0 / self.nv[0, 0]
        rho = 0.0
        for _ in range(iterations):
            den = hn[2, 0] * xn + hn[2, 1] * yn + 1.0
            un = (hn[0, 0] * xn + hn[0, 1] * yn + hn[0, 2]) / den
            vn = (hn[1, 0] * xn + hn[1, 1] * yn + hn[1, 2]) / den
            mx = ((un - self.nv[0, 2]) * cv_).astype(np.float32)
            my = ((vn - self.nv[1, 2]) * cv_).astype(np.float32)
            valid = (mx >= 1) & (mx <= vwl - 2) & (my >= 1) & (my <= vhl - 2) & (den > 0.05)
            if drop is not None:
                valid &= ~drop
            if valid.sum() < 64:
                raise RegistrationRefused('the thermal and visible images do not overlap')
            xv, yv = x32[valid], y32[valid]
            uv, vv, dv = (un[valid].astype(np.float32), vn[valid].astype(np.float32),
                          den[valid].astype(np.float32))
            hess = np.zeros((8, 8))
            proj_w = np.zeros(8)
            proj_t = np.zeros(8)
            corr_sum, w_norm2 = 0.0, 0.0
            rhos = []
            for f in maps:
                t = self.tpl[f][valid]
                w = cv2.remap(self.vis[f], mx, my, cv2.INTER_LINEAR)[valid]
                gx = cv2.remap(self.vgrad[f][0], mx, my, cv2.INTER_LINEAR)[valid] * cv_
                gy = cv2.remap(self.vgrad[f][1], mx, my, cv2.INTER_LINEAR)[valid] * cv_
                t -= t.mean()
                w -= w.mean()
                tn, wn = np.linalg.norm(t), np.linalg.norm(w)
                if tn < 1e-9 or wn < 1e-9:
                    continue
                t /= tn
                w /= wn
                gx /= wn
                gy /= wn
                inv = 1.0 / dv
                cols = np.empty((8, t.size), np.float32)
                cols[0] = gx * xv * inv
                cols[1] = gx * yv * inv
                cols[2] = gx * inv
                cols[3] = gy * xv * inv
                cols[4] = gy * yv * inv
                cols[5] = gy * inv
                common = -(gx * uv + gy * vv) * inv
                cols[6] = common * xv
                cols[7] = common * yv
                cols -= cols.mean(axis=1, keepdims=True)
                hess += (cols @ cols.T).astype(np.float64)
                proj_w += (cols @ w).astype(np.float64)
                proj_t += (cols @ t).astype(np.float64)
                c = float(np.dot(t, w))
                rhos.append(c)
                corr_sum += c
                w_norm2 += 1.0
            if not rhos:
                raise RegistrationRefused('no frame has edges where the two images overlap')
            rho = float(np.mean(rhos))
            try:
                hinv = np.linalg.inv(hess)
            except np.linalg.LinAlgError:
                break
            lam_n = w_norm2 - proj_w @ hinv @ proj_w
            lam_d = corr_sum - proj_t @ hinv @ proj_w
            if lam_d <= 0:
                break
            lam = lam_n / lam_d
            proj_e = lam * proj_t - proj_w
            delta = hinv @ proj_e
            old = self.from_normalised(hn)
            hn = hn + np.array([[delta[0], delta[1], delta[2]], [delta[3], delta[4], delta[5]],
                                [delta[6], delta[7], 0.0]])
            new = self.from_normalised(hn)
            if _corner_shift(old, new, self.tpl_k, self.vis_k, self.grid_shape) < tol:
                break
        return self.from_normalised(hn), rho


def _corner_shift(a, b, tpl_k, vis_k, grid_shape) -> float:
    """Largest corner movement between two homographies, in level pixels."""
    gh, gw = grid_shape
    pts = np.array([[[0, 0], [gw, 0], [gw, gh], [0, gh]]], np.float64)
    full = cv2.perspectiveTransform(pts, np.linalg.inv(tpl_k))
    pa = cv2.perspectiveTransform(full, vis_k @ a)
    pb = cv2.perspectiveTransform(full, vis_k @ b)
    return float(np.abs(pa - pb).max())


# --- the whole estimate --------------------------------------------------------------------------

def pick_frames(scores: Sequence[float], count: int) -> List[int]:
    """``count`` of the frames, spread over the recording, preferring the best-textured."""
    n = len(scores)
    if n <= count:
        return list(range(n))
    bins = np.array_split(np.arange(n), count)
    return [int(b[np.argmax([scores[i] for i in b])]) for b in bins]


def jackknife_groups(n: int, groups: int = 5) -> List[List[int]]:
    order = list(range(n))
    return [order[g::groups] for g in range(min(groups, n))]


def estimate(thermals: Sequence[np.ndarray], visibles: Sequence[np.ndarray],
             min_frames: int = 1, max_uncertainty: Optional[float] = None,
             min_texture: float = 1.0, max_frames: int = MAX_FRAMES,
             progress: Optional[Callable[[str], None]] = None,
             confidence: bool = True, refuse: bool = True) -> Estimate:
    """
    Estimate the thermal -> visible homography of one rig from its frames.

    ``thermals`` and ``visibles`` are matching lists of frames (any dtype; thermal frames
    already through the node's AGC are float32 in [0, 1]); all thermal frames have one size,
    all visible frames another. Raises :class:`RegistrationRefused` (one line) when the frames do
    not determine it: fewer than ``min_frames`` usable frames, no texture, a global peak that
    does not stand out, or a jackknife spread above ``max_uncertainty`` visible pixels (default:
    3 pixels per 640 of visible width). With ``refuse=False`` the last three only set
    ``Estimate.refusal`` (the benchmark scores every estimate).
    """
    def step(what: str) -> None:
        if progress is not None:
            progress(what)

    if len(thermals) != len(visibles):
        raise InputError('as many thermal as visible frames are needed')
    if not thermals:
        raise RegistrationRefused('no frames to register')
    therm = [to_gray_float(t) for t in thermals]
    vis = [to_gray_float(v) for v in visibles]
    if len({t.shape for t in therm}) > 1 or len({v.shape for v in vis}) > 1:
        raise InputError('all thermal frames must have one size, and all visible frames one size '
                         '(one rig)')
    th, tw = therm[0].shape
    vh, vw = vis[0].shape
    if min(tw, th, vw, vh) < 32:
        raise RegistrationRefused(f'frames too small to register (thermal {tw}x{th}, visible '
                                  f'{vw}x{vh}; at least 32 pixels a side)')
    max_uncertainty = 3.0 * vw / 640.0 if max_uncertainty is None else max_uncertainty
    notes: List[str] = []
    t_tex = [texture(t) for t in therm]
    v_tex = [texture(v) for v in vis]
    usable = [i for i in range(len(therm)) if t_tex[i] >= min_texture and v_tex[i] >= min_texture]
    if len(usable) < len(therm):
        dark = sum(v_tex[i] < min_texture for i in range(len(therm)))
        flat = sum(t_tex[i] < min_texture for i in range(len(therm)))
        notes.append(f'{len(therm) - len(usable)} frame(s) without texture skipped ({dark} '
                     f'visible, {flat} thermal)')
    if len(usable) < max(1, min_frames):
        why = ('the visible frames are dark or featureless (night?)'
               if sum(v < min_texture for v in v_tex) >= sum(t < min_texture for t in t_tex)
               else 'the thermal frames are featureless')
        raise RegistrationRefused(f'{len(usable)} of {len(therm)} frames have texture in both '
                                  f'cameras (at least {max(1, min_frames)} needed): {why}')
    quality = [min(t_tex[i], v_tex[i]) for i in usable]
    search_idx = [usable[i] for i in pick_frames(quality, MAX_SEARCH_FRAMES)]
    refine_idx = [usable[i] for i in pick_frames(quality, max_frames)]
    step('global search')
    found = global_search([therm[i] for i in search_idx], [vis[i] for i in search_idx])
    t_sel = [therm[i] for i in refine_idx]
    v_sel = [vis[i] for i in refine_idx]
    # the best search peak is not always the right one with few frames: refine the distinct
    # peaks at the coarsest level and keep the one whose edges agree best
    tried = []
    for candidate in found.candidates:
        try:
            first = _Level(t_sel, v_sel, candidate, LEVEL_WIDTHS[0], 1)
            refined, score = first.run(candidate)
        except RegistrationRefused:
            continue
        if all(np.abs(thermal_corners(refined, (tw, th)) - thermal_corners(other, (tw, th))).max()
               > 0.02 * vw for _, other in tried):  # two peaks that converge are one
            tried.append((score, refined))
    if not tried:
        raise RegistrationRefused('the thermal and visible images do not overlap anywhere')
    tried.sort(key=lambda item: -item[0])
    widths = fine_widths(vw)
    if widths and len(tried) > 1:
        # a second look at the best few, one level finer: at the coarsest level a wrong placement
        # can score above the right one, which then stands out once the edges are sharper
        step('compare placements')
        second = []
        for _, candidate in tried[:SECOND_LOOK]:
            try:
                look = _Level(t_sel, v_sel, candidate, widths[0],
                              _stride(widths[0], len(t_sel), vw))
                refined, score = look.run(candidate)
            except RegistrationRefused:
                continue
            if all(np.abs(thermal_corners(refined, (tw, th))
                          - thermal_corners(other, (tw, th))).max() > 0.02 * vw
                   for _, other in second):
                second.append((score, refined))
        if second:
            tried = sorted(second, key=lambda item: -item[0])
    rho, h = tried[0]
    # a rival is a placement far from the best one (near ones are the same basin, which the finer
    # levels settle) that fits about as well
    rivals = [score for score, other in tried[1:]
              if np.abs(thermal_corners(other, (tw, th)) - thermal_corners(h, (tw, th))).max()
              > RIVAL_DISTANCE * vw]
    margin = rho - rivals[0] if rivals else 1.0
    if widths:
        h, rho, levels = refine_fine(t_sel, v_sel, h, widths, step)
    else:
        levels = [_Level(t_sel, v_sel, h, LEVEL_WIDTHS[0], 1)]
    uncertainty = float('nan')
    if confidence:
        step('confidence')
        # the frames' spread on the edge maps and on the orientations, whichever is larger: on a
        # wrong placement the orientation fields can disagree so much that their refinement
        # does not move at all, and zero spread there proves nothing
        uncertainty = max(_jackknife(one, h, len(t_sel), (tw, th)) for one in levels)
    result = Estimate(h, (tw, th), (vw, vh), len(t_sel), len(thermals), uncertainty, rho,
                      found.peak_contrast, _field(h, (tw, th), vw), notes, margin=margin)
    if confidence:
        result.refusal = _judge(result, found, max_uncertainty)
        if result.refusal and refuse:
            raise RegistrationRefused(result.refusal)
    return result


def fine_widths(visible_width: int) -> List[int]:
    """Return the visible widths of the finer refinement levels for frames this wide."""
    widths: List[int] = []
    for width in LEVEL_WIDTHS[1:]:
        if LEVEL_WIDTHS[0] >= visible_width or (widths and widths[-1] >= visible_width):
            break
        widths.append(min(width, visible_width))
    return widths


def refine_fine(thermals: Sequence[np.ndarray], visibles: Sequence[np.ndarray], h: np.ndarray,
                widths: Optional[Sequence[int]] = None,
                progress: Optional[Callable[[str], None]] = None
                ) -> Tuple[np.ndarray, float, List['_Level']]:
    """
    Run the finer levels of the joint refinement from ``h``: the last steps of :func:`estimate`.

    ``thermals`` / ``visibles``: grey float frames (:func:`to_gray_float`). The square-root edge
    maps at each width of ``widths`` (default :func:`fine_widths`), then the orientation fields
    at the last width. Returns the homography, the edge-map correlation of the last edge level
    (the figure the refusal judges) and the levels (for the jackknife). Started from a known
    homography it finds where the frames' edges agree best near it (``benchmarks/
    registration.py`` starts it from the true one).
    """
    vw = visibles[0].shape[1]
    widths = fine_widths(vw) if widths is None else list(widths)
    if not widths:
        raise ValueError('no finer level for frames this narrow')
    n = len(thermals)
    rho = 0.0
    for width in widths:
        if progress is not None:
            progress(f'refine at {width} pixels')
        level = _Level(thermals, visibles, h, width, _stride(width, n, vw), fine=True)
        h, rho = level.run(h, iterations=LEVEL_ITERATIONS, tol=LEVEL_TOL)
    levels = [level]
    # last: the same level on gradient orientations; the edge correlation above stays the
    # figure the refusal judges (MIN_CORRELATION is set on it)
    if progress is not None:
        progress('refine on orientations')
    levels.append(_Level(thermals, visibles, h, widths[-1], _stride(widths[-1], n, vw),
                         kind='orientation'))
    h, _ = levels[-1].run(h, iterations=LEVEL_ITERATIONS, tol=LEVEL_TOL)
    return h, rho, levels


def _stride(width: int, frames: int, visible_width: int) -> int:
    """Return the sampling stride of the thermal grid at one refinement level."""
    if frames <= 3:
        return 1
    return 2 if width <= 320 or frames <= 12 else 3


def _field(h, thermal_size, visible_width) -> float:
    c = thermal_corners(h, thermal_size)
    return float(0.5 * (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3]))
                 / visible_width)


def _jackknife(level: _Level, h: np.ndarray, n: int, thermal_size) -> float:
    estimates = []
    try:
        if n >= 3:
            for group in jackknife_groups(n):
                keep = [i for i in range(n) if i not in group]
                estimates.append(level.run(h, keep, iterations=8)[0])
        else:  # one or two frames: leave one quarter of the image out at a time
            xs, ys = level.grid
            gh, gw = level.grid_shape
            for qx in (0, 1):
                for qy in (0, 1):
                    drop = ((xs >= gw / 2) == bool(qx)) & ((ys >= gh / 2) == bool(qy))
                    estimates.append(level.run(h, None, iterations=8, drop=drop)[0])
    except RegistrationRefused:  # a subset without overlap or edges: nothing to trust
        return float('inf')
    corners = np.stack([thermal_corners(e, thermal_size) for e in estimates])
    k = len(estimates)
    mean = corners.mean(axis=0)
    var = (k - 1) / k * ((corners - mean) ** 2).sum(axis=(0, 2))  # per corner
    return float(np.sqrt(var).mean())


def _judge(result: Estimate, found: SearchResult, max_uncertainty: float) -> Optional[str]:
    """Why the estimate cannot be trusted, or None."""
    if not math.isfinite(result.uncertainty_px) or result.uncertainty_px > max_uncertainty:
        return (
            f'the frames disagree: the thermal corners move by {result.uncertainty_px:.1f} px '
            f'(visible pixels) when a fifth of the frames is left out (at most '
            f'{max_uncertainty:.1f}); the cameras may not overlap, or the scene has too little '
            f'shared structure - record more varied frames (near and far edges, daylight)')
    if result.margin < MIN_MARGIN:
        return (f'two different placements of the thermal view fit the visible images about '
                f'equally well (correlation margin {result.margin:.3f}, at least {MIN_MARGIN:g}): '
                f'record more frames with varied scenes')
    if result.correlation < MIN_CORRELATION:
        return (f'the registered thermal and visible edges do not agree (correlation '
                f'{result.correlation:.2f}, at least {MIN_CORRELATION:g}); the cameras may not '
                f'overlap, or the frames are not of the same scenes')
    return None
