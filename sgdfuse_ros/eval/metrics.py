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
Standard infrared-visible image-fusion metrics.

The numbers follow the conventions of the evaluator that published IVIF tables use
(``utils/Evaluator.py`` of CDDFuse, itself a port of the usual MATLAB code), so values
computed here can be put next to published ones:

* images are read with OpenCV, converted with ``COLOR_BGR2GRAY`` in float32 and rounded
  (:func:`to_gray`, :func:`read_gray`); every metric then works on float64 0..255 gray;
* ``EN``      Shannon entropy (bits) of the 256-bin histogram of the fused image;
* ``SD``      population standard deviation of the fused image;
* ``SF``      spatial frequency ``sqrt(mean(dx^2) + mean(dy^2))`` (forward differences);
* ``AG``      average gradient ``mean(sqrt((gx^2 + gy^2) / 2))`` with central differences
  inside and one-sided differences on the border (``np.gradient``);
* ``MI``      ``MI(F, IR) + MI(F, VIS)`` in nats, each from the exact joint histogram of
  the gray levels (every distinct value is its own bin, as ``sklearn``'s
  ``mutual_info_score`` on the flattened images); ``MI_bits`` is the same in bits;
* ``SCD``     sum of the correlations of differences ``corr(IR, F - VIS) + corr(VIS, F - IR)``;
* ``VIF``     multiscale pixel-domain VIF (4 scales, Gaussian windows 17/9/5/3, sigma_n^2 = 2),
  summed over the two sources: ``vifp(IR, F) + vifp(VIS, F)``;
* ``Qabf``    Xydeas-Petrovic edge-preservation metric (Sobel, zero padding);
* ``SSIM``    ``ssim(F, IR) + ssim(F, VIS)`` with the scikit-image defaults of the
  reference (7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, mean over the
  map cropped by 3 pixels) and ``data_range = 2`` -- the float default of old
  scikit-image, which is what published tables used; ``SSIM255`` is the same with the
  meaningful ``data_range = 255``;
* ``PSNR``    ``10 log10(max(F)^2 / MSE)`` with ``MSE`` the mean of the two source MSEs;
* ``CC``      mean of the Pearson correlations ``corr(IR, F)`` and ``corr(VIS, F)``.

Degenerate inputs never raise nor give NaN. :func:`fusion_metrics` gives the reference's
values where it has one, defined here otherwise (so tables stay comparable):

* a correlation with a constant operand (``SCD``, ``CC``) counts as 0;
* ``vifp`` of a constant source is 1 (the reference's NaN fallback);
* ``Qabf`` is 0 when neither source has any gradient (the Sobel filter zero-pads, as the
  reference, so only all-zero sources have none);
* ``PSNR`` is ``inf`` when ``F == IR == VIS`` (and ``-inf`` when ``F`` is all zero and the
  MSE is not);
* ``MI`` is 0 when either image of a pair is constant;
* images smaller than the VIF pyramid (41 px) use the scales that fit; SSIM needs 7x7.

:func:`frame_metrics`, which every report uses (``evaluate``, ``replay``, ``sgdfuse metrics``),
instead leaves a metric out of the frame (``None``, with its reason, never in a mean) where the
*sources* make it 0/0 whatever was fused: ``VIF`` with a constant or nearly constant source
(less than :data:`VIF_MIN_INFO` information per window; a reference "1" would add up to 2.0 to
the frame's VIF) or an image under 17 px; ``CC`` and ``SCD`` with a constant source; ``Qabf``
with two all-zero sources; ``PSNR`` when the fused image equals two identical sources. A
degenerate *fused* image (constant, black) is scored and earns its low value (``VIF`` 0, ``CC``
0, ``PSNR`` -inf for an all-black one), so that it cannot hide from a mean.

Scoring folders of images and printing tables is :mod:`sgdfuse_ros.eval.scoring`; the shared
building blocks (correlation, mutual information, VIF, Sobel, SSIM sums) are in
:mod:`sgdfuse_ros.eval.metric_kernels`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import cv2
import numpy as np

from .datasets import read_image
from .metric_kernels import (box_sum_valid, corr, gray_labels, mutual_info, qabf_map, sobel,
                             SSIM_WIN, VIF_KERNELS, vif_terms)
from ..errors import error_line, InputError
from ..image_decode import as_reference_colour

__all__ = [
    'METRIC_NAMES',
    'HEADLINE_METRICS',
    'HIGHER_IS_BETTER',
    'to_gray',
    'read_gray',
    'fusion_metrics',
    'frame_metrics',
]

METRIC_NAMES: Tuple[str, ...] = (
    'EN', 'SD', 'SF', 'AG', 'MI', 'MI_bits', 'SCD', 'VIF', 'Qabf', 'SSIM', 'SSIM255', 'PSNR', 'CC',
)
HEADLINE_METRICS: Tuple[str, ...] = ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM')
HIGHER_IS_BETTER: Dict[str, bool] = dict.fromkeys(METRIC_NAMES, True)

#: a VIF source carrying less information than this per window (mean over the scales, in the
#: units of the VIF sums; natural images carry about 1) is degenerate: ``vifp`` of a constant
#: source is 0/0, and of a nearly constant one (a single odd pixel) explodes to 10 and more
VIF_MIN_INFO = 1e-3
#: the smallest side VIF works on: its first Gaussian window
VIF_MIN_SIDE = VIF_KERNELS[0].size

_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_LN2 = math.log(2.0)


# --------------------------------------------------------------------------- reading


def to_gray(img: np.ndarray) -> np.ndarray:
    """
    Gray float64 image exactly as the reference evaluator reads it.

    ``img`` is what ``cv2.imread`` returns: uint8 BGR (HxWx3), BGRA (HxWx4) or gray (HxW or
    HxWx1).  Colour is converted like ``np.round(cv2.cvtColor(img.astype(float32),
    COLOR_BGR2GRAY))``; a gray image is returned as is (its three replicated channels
    would convert back to the same values).
    """
    a = np.asarray(img)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer)
                               or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f'expected a numeric image, got dtype {a.dtype}')
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return a.astype(np.float64)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f'expected an HxW, HxWx3 or HxWx4 image, got shape {a.shape}')
    code = cv2.COLOR_BGR2GRAY if a.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    gray = cv2.cvtColor(np.ascontiguousarray(a, dtype=np.float32), code)
    return np.round(gray).astype(np.float64)


def read_gray(path, max_pixels=None) -> np.ndarray:
    """
    Read an image file as the reference does (colour, then :func:`to_gray`).

    Through the one decode every command uses (:func:`sgdfuse_ros.eval.datasets.read_image`:
    size from the header first, no EXIF rotation), then the reference's colour view.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f'image not found: {p}')
    return to_gray(as_reference_colour(read_image(p, max_pixels)))


# --------------------------------------------------------------------------- scoring


class _Scorer:
    """Lazily computed, shared intermediate results for one (fused, ir, vis) triple."""

    def __init__(self, f: np.ndarray, a: np.ndarray, b: np.ndarray):
        self.f, self.a, self.b = f, a, b
        self._cache: dict = {}

    def _get(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # ---- single-image metrics
    def EN(self) -> float:
        u8 = np.clip(np.rint(self.f), 0, 255).astype(np.intp).ravel()
        h = np.bincount(u8, minlength=256) / u8.size
        h = h[h > 0]
        return float(-np.sum(h * np.log2(h))) + 0.0

    def SD(self) -> float:
        return float(np.std(self.f))

    def SF(self) -> float:
        f = self.f
        dx = f[:, 1:] - f[:, :-1]
        dy = f[1:, :] - f[:-1, :]
        mx = float(np.mean(dx * dx)) if dx.size else 0.0
        my = float(np.mean(dy * dy)) if dy.size else 0.0
        return math.sqrt(mx + my)

    def AG(self) -> float:
        f = self.f
        gx = np.gradient(f, axis=1) if f.shape[1] > 1 else np.zeros_like(f)
        gy = np.gradient(f, axis=0) if f.shape[0] > 1 else np.zeros_like(f)
        return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))

    # ---- information
    def _mi_nats(self) -> float:
        def compute():
            lf = gray_labels(self.f)
            return mutual_info(lf, gray_labels(self.a)) + mutual_info(lf, gray_labels(self.b))

        return self._get('mi', compute)

    def MI(self) -> float:
        return self._mi_nats()

    def MI_bits(self) -> float:
        return self._mi_nats() / _LN2

    # ---- correlation based
    def SCD(self) -> float:
        f, a, b = self.f, self.a, self.b
        return corr(a, f - b) + corr(b, f - a)

    def CC(self) -> float:
        f, a, b = self.f, self.a, self.b
        return (corr(a, f) + corr(b, f)) / 2.0

    def PSNR(self) -> float:
        f, a, b = self.f, self.a, self.b
        mse = (float(np.mean((a - f) ** 2)) + float(np.mean((b - f) ** 2))) / 2.0
        peak = float(np.max(f)) ** 2
        if mse == 0.0:
            return math.inf
        if peak == 0.0:
            return -math.inf
        return 10.0 * math.log10(peak / mse)

    # ---- structural
    def _vif(self) -> list:
        return self._get('vif', lambda: vif_terms(self.f, (self.a, self.b)))

    def VIF(self) -> float:
        # 0/0 (a constant source) is NaN in the reference, which then reports 1.
        return sum(1.0 if d == 0.0 else n / d for n, d, _ in self._vif())

    # ---- where the sources leave a metric undefined
    def undefined(self, name: str) -> Optional[str]:
        """
        Return why ``name`` is undefined on this frame (None if it is defined).

        Undefined means 0/0 whatever the fused image is: the sources carry nothing for the
        metric to measure (a constant source for VIF, CC and SCD; no gradient in either source
        for Qabf; an image smaller than VIF's window), or the fused image equals two identical
        sources (PSNR infinite). A degenerate *fused* image is scored: it earns its low value.
        """
        if name == 'VIF':
            if min(self.f.shape) < VIF_MIN_SIDE:
                return (f'VIF needs images of at least {VIF_MIN_SIDE}x{VIF_MIN_SIDE}, got '
                        f'{self.f.shape[1]}x{self.f.shape[0]}')
            for what, (_, den, windows) in zip(('infrared', 'visible'), self._vif()):
                if den < VIF_MIN_INFO * windows:
                    return (f'VIF undefined: the {what} image is constant or nearly so (it '
                            f'carries no information for VIF to measure)')
        elif name in ('CC', 'SCD'):
            for what, source in (('infrared', self.a), ('visible', self.b)):
                if float(source.max()) == float(source.min()):
                    return (f'{name} undefined: the {what} image is constant (a correlation '
                            f'with it is 0/0)')
        elif name == 'Qabf':
            if not (np.any(self.a) or np.any(self.b)):
                return 'Qabf undefined: neither source has any edge (both are all zero)'
        elif name == 'PSNR':
            if np.array_equal(self.a, self.b) and np.array_equal(self.f, self.a):
                return 'PSNR undefined: the fused image equals both (identical) sources, MSE 0'
        return None

    def Qabf(self) -> float:
        ga, aa = sobel(self.a)
        gb, ab = sobel(self.b)
        gf, af = sobel(self.f)
        den = float(np.sum(ga + gb))
        if den == 0.0:
            return 0.0
        num = float(np.sum(qabf_map(ga, aa, gf, af) * ga + qabf_map(gb, ab, gf, af) * gb))
        return num / den

    def _ssim_stats(self):
        def compute():
            if min(self.f.shape) < SSIM_WIN:
                raise InputError(f'images must be at least {SSIM_WIN}x{SSIM_WIN} for SSIM, '
                                 f'got {self.f.shape}')
            npix = float(SSIM_WIN * SSIM_WIN)
            cov_norm = npix / (npix - 1.0)
            f = self.f
            uf = box_sum_valid(f) / npix
            vf = cov_norm * (box_sum_valid(f * f) / npix - uf * uf)
            stats = []
            for s in (self.a, self.b):
                us = box_sum_valid(s) / npix
                vs = cov_norm * (box_sum_valid(s * s) / npix - us * us)
                vfs = cov_norm * (box_sum_valid(f * s) / npix - uf * us)
                stats.append((uf * us, uf * uf + us * us, vfs, vf + vs))
            return stats

        return self._get('ssim', compute)

    def _ssim(self, data_range: float) -> float:
        c1 = (_SSIM_K1 * data_range) ** 2
        c2 = (_SSIM_K2 * data_range) ** 2
        total = 0.0
        for ufs, uff_uss, vfs, vf_vs in self._ssim_stats():
            s = ((2.0 * ufs + c1) * (2.0 * vfs + c2)) / ((uff_uss + c1) * (vf_vs + c2))
            total += float(s.mean())
        return total

    def SSIM(self) -> float:
        return self._ssim(2.0)

    def SSIM255(self) -> float:
        return self._ssim(255.0)


def _check_names(names: Iterable[str]) -> Tuple[str, ...]:
    if isinstance(names, str):
        names = [names]
    out = tuple(names)
    bad = [n for n in out if n not in METRIC_NAMES]
    if bad:
        raise InputError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(METRIC_NAMES)}")
    return out


def _as_gray_array(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise InputError(f'{what} must be a 2-D gray image (see metrics.to_gray), '
                         f'got shape {a.shape}')
    if a.size == 0:
        raise InputError(f'{what} is empty')
    if (not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating))
            or a.dtype == bool):
        raise InputError(f'{what} must be numeric, got dtype {a.dtype}')
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise InputError(f'{what} contains NaN or infinite values')
    return a


def _scorer(fused, ir, vis) -> '_Scorer':
    """Check the three gray images (each as :func:`_as_gray_array`, one shape) -> a scorer."""
    f = _as_gray_array(fused, 'fused image')
    a = _as_gray_array(ir, 'infrared image')
    b = _as_gray_array(vis, 'visible image')
    if not (f.shape == a.shape == b.shape):
        raise InputError(f'image sizes differ: fused {f.shape}, infrared {a.shape}, '
                         f'visible {b.shape}')
    return _Scorer(f, a, b)


def fusion_metrics(fused, ir, vis, names: Sequence[str] = METRIC_NAMES) -> Dict[str, float]:
    """
    All requested metrics of one fused image against its two sources.

    Arguments are gray images as :func:`to_gray` returns them (float64, 0..255), all the
    same shape.  Returns ``{name: float}`` in the order of ``names``.
    """
    names = _check_names(names)
    scorer = _scorer(fused, ir, vis)
    with np.errstate(divide='ignore', invalid='ignore'):
        return {name: float(getattr(scorer, name)()) for name in names}


def frame_metrics(fused, ir, vis, names: Sequence[str] = METRIC_NAMES
                  ) -> Tuple[Dict[str, Optional[float]], Dict[str, str]]:
    """
    Compute the metrics of one frame, each on its own: ``(values, missing)``.

    A metric that cannot be computed on this frame (an image too small for SSIM's 7x7 window,
    sizes that differ, an empty image) or that the sources leave undefined
    (:meth:`_Scorer.undefined`: VIF, CC, SCD against a constant source, ...) is ``None`` in
    ``values`` and its one-line reason is in ``missing``, so that it never enters a mean; the
    others are computed as :func:`fusion_metrics` computes them. Never raises for the frame's
    content, so one odd frame never ends a run.
    """
    names = _check_names(names)
    values: Dict[str, Optional[float]] = dict.fromkeys(names)
    missing: Dict[str, str] = {}
    try:
        scorer = _scorer(fused, ir, vis)
    except Exception as err:  # noqa: B902 - the frame is unscorable, the run goes on
        reason = str(err) if isinstance(err, InputError) else error_line(err, 160)
        return values, dict.fromkeys(names, reason)
    with np.errstate(divide='ignore', invalid='ignore'):
        for name in names:
            try:
                reason = scorer.undefined(name)
                if reason:
                    missing[name] = reason
                    continue
                values[name] = float(getattr(scorer, name)())
            except Exception as err:  # noqa: B902
                missing[name] = str(err) if isinstance(err, InputError) else error_line(err, 160)
    return values, missing
