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
The building blocks of the fusion metrics (:mod:`sgdfuse_ros.eval.metrics`).

Each as the reference evaluator computes it: correlation, mutual information from exact joint
histograms, the pixel-domain VIF pyramid, Sobel gradients and the Qabf edge map, SSIM's window
sums.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import cv2
import numpy as np

SSIM_WIN = 7
VIF_SIGMA_NSQ = 2.0
VIF_EPS = 1e-10


def corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation as the reference writes it; 0 if either operand is constant."""
    xc = x - x.mean()
    yc = y - y.mean()
    den = float(np.sum(xc * xc)) * float(np.sum(yc * yc))
    if not den > 0.0:
        return 0.0
    return float(np.sum(xc * yc) / math.sqrt(den))


def is_byte_valued(x: np.ndarray) -> bool:
    return (bool(x.size) and float(x.min()) >= 0.0 and float(x.max()) <= 255.0
            and bool(np.all(x == np.rint(x))))


def gray_labels(x: np.ndarray) -> Tuple[np.ndarray, int]:
    """Integer labels of the distinct values of ``x`` (flattened) and their number."""
    if is_byte_valued(x):
        return x.ravel().astype(np.intp), 256
    uniq, inv = np.unique(x.ravel(), return_inverse=True)
    return inv.ravel().astype(np.intp), int(uniq.size)


def mutual_info(a: Tuple[np.ndarray, int], b: Tuple[np.ndarray, int]) -> float:
    """Mutual information (nats) of two label images from their exact joint histogram."""
    la, na = a
    lb, nb = b
    n = la.size
    joint = np.bincount(la * nb + lb, minlength=na * nb).reshape(na, nb)
    pa = joint.sum(axis=1)
    pb = joint.sum(axis=0)
    if np.count_nonzero(pa) <= 1 or np.count_nonzero(pb) <= 1:
        return 0.0
    ia, ib = np.nonzero(joint)
    nij = joint[ia, ib].astype(np.float64)
    mi = np.sum(nij * (np.log(nij) + math.log(n) - np.log(pa[ia].astype(np.float64))
                       - np.log(pb[ib].astype(np.float64)))) / n
    return max(float(mi), 0.0)


def valid_gauss(x: np.ndarray, k1d: np.ndarray) -> np.ndarray:
    """``convolve2d(x, rot90(outer(k, k), 2), 'valid')`` for a symmetric odd 1-D kernel."""
    r = (k1d.size - 1) // 2
    h, w = x.shape
    if h - 2 * r <= 0 or w - 2 * r <= 0:
        return np.empty((max(h - 2 * r, 0), max(w - 2 * r, 0)))
    out = cv2.sepFilter2D(np.ascontiguousarray(x), cv2.CV_64F, k1d, k1d,
                          borderType=cv2.BORDER_REFLECT)
    return out[r:h - r, r:w - r]


def vif_kernel(scale: int) -> np.ndarray:
    n = 2 ** (4 - scale + 1) + 1
    sd = n / 5.0
    m = (n - 1) / 2.0
    t = np.arange(-m, m + 1)
    g = np.exp(-(t * t) / (2.0 * sd * sd))
    # The 2-D window exp(-(x^2 + y^2) / 2sd^2) is the outer product of g with itself; its
    # smallest entry is far above the eps*max cut of the MATLAB code, so nothing is cut.
    return g / g.sum()


VIF_KERNELS = tuple(vif_kernel(s) for s in range(1, 5))


def vif_terms(dist: np.ndarray, refs: Sequence[np.ndarray]) -> list:
    """
    Return ``(num, den, windows)`` of the multiscale pixel VIF for each ref against ``dist``.

    ``num / den`` is ``vifp(ref, dist)``; ``den`` is the information the reference carries (sum
    over the scales' windows) and ``windows`` how many windows were summed.
    """
    num = [0.0] * len(refs)
    den = [0.0] * len(refs)
    windows = 0
    refs = list(refs)
    eps = VIF_EPS
    for scale, win in enumerate(VIF_KERNELS, start=1):
        if scale > 1:
            dist = valid_gauss(dist, win)[::2, ::2]
            refs = [valid_gauss(r, win)[::2, ::2] for r in refs]
        if dist.size == 0:
            break
        mu2 = valid_gauss(dist, win)
        if mu2.size == 0:
            break
        windows += mu2.size
        s2 = valid_gauss(dist * dist, win) - mu2 * mu2
        s2[s2 < 0] = 0.0
        s2_small = s2 < eps
        for i, ref in enumerate(refs):
            mu1 = valid_gauss(ref, win)
            s1 = valid_gauss(ref * ref, win) - mu1 * mu1
            s12 = valid_gauss(ref * dist, win) - mu1 * mu2
            s1[s1 < 0] = 0.0
            g = s12 / (s1 + eps)
            sv = s2 - g * s12
            small = s1 < eps
            g[small] = 0.0
            sv[small] = s2[small]
            s1[small] = 0.0
            g[s2_small] = 0.0
            sv[s2_small] = 0.0
            neg = g < 0
            sv[neg] = s2[neg]
            g[neg] = 0.0
            sv[sv <= eps] = eps
            num[i] += float(np.sum(np.log10(1.0 + g * g * s1 / (sv + VIF_SIGMA_NSQ))))
            den[i] += float(np.sum(np.log10(1.0 + s1 / VIF_SIGMA_NSQ)))
    return [(n, d, windows) for n, d in zip(num, den)]


def sobel(img: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return gradient strength and orientation as ``Qabf_getArray`` computes them.

    Sobel by ``convolve2d(..., 'same')`` (zero padding), angle ``atan(gy / gx)`` and pi/2 where
    ``gx == 0``.
    """
    p = np.pad(img, 1)
    # convolve2d flips the kernel: sx = left column minus right column, sy = below minus above.
    left = p[:-2, :-2] + 2.0 * p[1:-1, :-2] + p[2:, :-2]
    right = p[:-2, 2:] + 2.0 * p[1:-1, 2:] + p[2:, 2:]
    above = p[:-2, :-2] + 2.0 * p[:-2, 1:-1] + p[:-2, 2:]
    below = p[2:, :-2] + 2.0 * p[2:, 1:-1] + p[2:, 2:]
    sx = left - right
    sy = below - above
    g = np.sqrt(sx * sx + sy * sy)
    # atan(+-inf) = +-pi/2; where sx == 0 the reference sets pi/2 whatever sy is.
    ratio = np.divide(sy, sx, out=np.full(img.shape, np.inf), where=sx != 0)
    return g, np.arctan(ratio)


def qabf_map(g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray,
             a_f: np.ndarray) -> np.ndarray:
    # Relative strength: min/max, except that equal strengths give gF itself (reference quirk).
    ratio = np.divide(np.minimum(g_src, g_f), np.maximum(g_src, g_f), out=g_f.copy(),
                      where=g_src != g_f)
    align = 1.0 - np.abs(a_src - a_f) / (math.pi / 2)
    q_g = 0.9994 / (1.0 + np.exp(-15.0 * (ratio - 0.5)))
    q_a = 0.9879 / (1.0 + np.exp(-22.0 * (align - 0.8)))
    return q_g * q_a


def box_sum_valid(x: np.ndarray) -> np.ndarray:
    """Sum over every 7x7 window that lies inside the image (the SSIM map cropped by 3)."""
    r = (SSIM_WIN - 1) // 2
    s = cv2.boxFilter(x, cv2.CV_64F, (SSIM_WIN, SSIM_WIN), normalize=False,
                      borderType=cv2.BORDER_REFLECT)
    return s[r:-r, r:-r]
