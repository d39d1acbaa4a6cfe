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
No-reference fusion losses (images in [0, 1], shape (N, 1, H, W)).

Each term is a differentiable stand-in for what the fusion metrics reward:

- ``intensity``: L1 to the brighter source, weighted ``background + target_weight * targets``
  (the salient, warm targets of the prior must keep their thermal intensity; SCD, MI with the
  thermal image); ``target_weight`` (default 1) can be given in the weights dict;
- ``gradient``: L1 between the fused Sobel magnitude and the stronger of the two sources'
  magnitudes, per pixel (Qabf, SF, AG);
- ``gradient_deficit``: the one-sided version, ``relu(max(|grad ir|, |grad vis|) - |grad F|)``:
  only edges weaker than the stronger source's cost (a sharpening term);
- ``gradient_vector``: L1 between the fused gradient *vector* and that of the source whose edge
  is stronger at the pixel (strength and orientation, as Qabf scores edges);
- ``ssim``: ``(1 - SSIM(F, ir)) + (1 - SSIM(F, vis))``, 7x7 uniform window (SSIM, VIF);
- ``scd``: ``2 - corr(ir, F - vis) - corr(vis, F - ir)`` per image (SCD: the fused image holds
  what each source adds to the other);
- ``contrast``: ``relu(ratio * max(std(ir), std(vis)) - std(F))`` per image (SD, EN); the ratio
  (default 1.1) can be given in the weights dict as ``contrast_ratio``.

Visible-led regions (weights keys ``visible_lead`` and ``lead_edges``; absent or 0 = off, both 1 in
``DEFAULT_WEIGHTS`` and in the refiner's weights). Where the visible camera is much brighter than
the thermal one (``visible_lead_map`` ``V``: a daylight sky, painted road markings, other cold
surfaces in daylight) the thermal image holds no target, only the cold background's texture and
the sensor's noise, and the visible image is the reference.
``visible_lead`` = ``lam`` adds ``lam * V`` to the intensity weight (towards the brighter, visible
level); ``lead_edges`` = ``e`` (0..1) scales thermal edges by ``1 - e * V`` in the gradient terms
(thermal sky clutter is then no longer an edge to keep, so it costs) and asks ``SSIM(F, ir)`` only
with weight ``1 - e * V``. With both 0 the terms are exactly the ones above.

``target_contrast`` (weight key of the same name): inside the prior's targets (``targets > 0.25``,
the map the network is given: an emptied prior asks nothing), each pixel's contrast to the
target's surround (a ``TARGET_RING``-pixel ring around the targets, averaged over a
``TARGET_WINDOW`` box) must be at least the thermal image's:
``mean over target pixels of relu((ir - ring_mean(ir)) - (F - ring_mean(F)))``. This is what the
box-based target measure (``sgdfuse_ros.eval.target_boxes``) asks of every warm person or car,
with the prior telling where the targets are.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch.nn import functional as F

DEFAULT_WEIGHTS = {'intensity': 1.0, 'gradient': 30.0, 'gradient_deficit': 0.0,
                   'gradient_vector': 0.0, 'ssim': 2.0, 'scd': 0.5, 'contrast': 1.0,
                   'visible_lead': 1.0, 'lead_edges': 1.0, 'target_contrast': 3.0}

#: target_contrast: target pixels, ring width around them, window of the local ring mean
TARGET_LEVEL, TARGET_RING, TARGET_WINDOW = 0.25, 4, 17


def sobel(x: torch.Tensor):
    """(gx, gy) Sobel derivatives (/4), replicate border."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device,
                      dtype=x.dtype).view(1, 1, 3, 3) / 4.0
    p = F.pad(x, (1, 1, 1, 1), mode='replicate')
    return F.conv2d(p, kx), F.conv2d(p, kx.transpose(2, 3))


def box_filter(x: torch.Tensor, window: int) -> torch.Tensor:
    """
    Average over ``window`` x ``window`` (valid), per channel.

    Computed as two 1-D convolutions (much faster on CPU than avg_pool2d with stride 1).
    """
    c = x.shape[1]
    k = torch.full((c, 1, 1, window), 1.0 / window, device=x.device, dtype=x.dtype)
    x = F.conv2d(x, k, groups=c)
    return F.conv2d(x, k.transpose(2, 3), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7, c1: float = 1e-6,
         c2: float = 9e-6) -> torch.Tensor:
    """
    Compute the mean SSIM per image (N,) with a uniform window.

    The constants are small (the reported SSIM uses data_range=2 on 0..255 images, i.e. nearly
    none), so low-contrast structure counts.
    """
    return ssim_map(x, y, window, c1, c2).mean(dim=(1, 2, 3))


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 7, c1: float = 1e-6,
             c2: float = 9e-6) -> torch.Tensor:
    """Local SSIM (N, 1, H - window + 1, W - window + 1) over ``window`` x ``window`` boxes."""
    stats = box_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, xx, yy, xy = stats.split(1, dim=1)
    sxx = xx - mu_x * mu_x
    syy = yy - mu_y * mu_y
    sxy = xy - mu_x * mu_y
    return (((2 * mu_x * mu_y + c1) * (2 * sxy + c2))
            / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2)))


#: visible_lead_map: the local mean of ``vis - ir`` (``LEAD_WINDOW`` box) mapped linearly from
#: 0 at ``LEAD_LOW`` to 1 at ``LEAD_HIGH`` (images in [0, 1]).
LEAD_LOW, LEAD_HIGH, LEAD_WINDOW = 0.2, 0.4, 9


def visible_lead_map(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """
    Map where the visible image leads: (N, 1, H, W) in [0, 1].

    1 where the visible image is, over a 9x9 neighbourhood, brighter than the thermal one by >= 0.4
    (cold background in daylight), 0 below a 0.2 gap.
    """
    pad = LEAD_WINDOW // 2
    gap = box_filter(F.pad(vis - ir, (pad, pad, pad, pad), mode='replicate'), LEAD_WINDOW)
    return ((gap - LEAD_LOW) / (LEAD_HIGH - LEAD_LOW)).clamp(0.0, 1.0)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=(1, 2, 3), keepdim=True)
    b = b - b.mean(dim=(1, 2, 3), keepdim=True)
    num = (a * b).sum(dim=(1, 2, 3))
    den = torch.sqrt((a * a).sum(dim=(1, 2, 3)) * (b * b).sum(dim=(1, 2, 3)) + 1e-8)
    return num / den


def target_contrast_deficit(fused: torch.Tensor, ir: torch.Tensor,
                            targets: torch.Tensor) -> torch.Tensor:
    """Mean contrast shortfall of ``fused`` against ``ir`` over the target pixels (a scalar)."""
    inside = (targets > TARGET_LEVEL).to(fused.dtype)
    if not bool(inside.any()):
        return fused.sum() * 0.0
    grown = F.max_pool2d(inside, 2 * TARGET_RING + 1, stride=1, padding=TARGET_RING)
    ring = grown - inside
    pad = TARGET_WINDOW // 2
    stats = box_filter(F.pad(torch.cat([fused * ring, ir * ring, ring], dim=1),
                             (pad, pad, pad, pad), mode='replicate'), TARGET_WINDOW)
    weight = stats[:, 2:3]
    valid = inside * (weight > 0.02).to(fused.dtype)  # pixels with a ring nearby
    if not bool(valid.any()):
        return fused.sum() * 0.0
    safe = weight.clamp_min(0.02)
    c_fused = fused - stats[:, 0:1] / safe
    c_ir = ir - stats[:, 1:2] / safe
    return (F.relu(c_ir - c_fused) * valid).sum() / valid.sum()


def fusion_losses(fused, ir, vis, targets, weights: Dict[str, float] = None,
                  background: float = 0.2, contrast_ratio: float = 1.1) -> Dict[str, torch.Tensor]:
    """Return a dict of the weighted terms and their sum under ``"total"``."""
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    contrast_ratio = float(w.pop('contrast_ratio', contrast_ratio))
    target_weight = float(w.pop('target_weight', 1.0))
    lead = float(w.pop('visible_lead', 0.0))
    lead_edges = float(w.pop('lead_edges', 0.0))
    terms = {}
    brighter = torch.maximum(ir, vis)
    weight = background + target_weight * targets
    lead_map = visible_lead_map(ir, vis) if lead > 0 or lead_edges > 0 else None
    if lead > 0:
        weight = weight + lead * lead_map
    terms['intensity'] = (weight * (fused - brighter).abs()).mean()
    (ax, ay), (bx, by), (fx, fy) = sobel(ir), sobel(vis), sobel(fused)
    if lead_edges > 0:  # thermal edges inside visible-led regions are not edges to keep
        keep = 1.0 - lead_edges * lead_map
        ax, ay = ax * keep, ay * keep
    g_ir = torch.sqrt(ax * ax + ay * ay + 1e-8)
    g_vis = torch.sqrt(bx * bx + by * by + 1e-8)
    g_ref = torch.maximum(g_ir, g_vis)
    g_fused = torch.sqrt(fx * fx + fy * fy + 1e-8)
    ir_wins = g_ir >= g_vis
    terms['gradient_vector'] = ((fx - torch.where(ir_wins, ax, bx)).abs()
                                + (fy - torch.where(ir_wins, ay, by)).abs()).mean()
    terms['gradient'] = (g_fused - g_ref).abs().mean()
    terms['gradient_deficit'] = F.relu(g_ref - g_fused).mean()
    if lead_edges <= 0:
        terms['ssim'] = (2.0 - ssim(fused, ir) - ssim(fused, vis)).mean()
    else:  # SSIM(F, ir) counts as met inside visible-led regions
        keep = box_filter(1.0 - lead_edges * lead_map, 7)
        ir_part = (keep * ssim_map(fused, ir) + (1.0 - keep)).mean(dim=(1, 2, 3))
        terms['ssim'] = (2.0 - ir_part - ssim(fused, vis)).mean()
    terms['scd'] = (2.0 - correlation(ir, fused - vis) - correlation(vis, fused - ir)).mean()
    std = lambda t: t.std(dim=(1, 2, 3))  # noqa: E731
    terms['contrast'] = F.relu(contrast_ratio * torch.maximum(std(ir), std(vis))
                               - std(fused)).mean()
    if w.get('target_contrast', 0.0):
        terms['target_contrast'] = target_contrast_deficit(fused, ir, targets)
    out = {k: w.get(k, 0.0) * v for k, v in terms.items() if w.get(k, 0.0)}
    out['total'] = sum(out.values())
    return out
