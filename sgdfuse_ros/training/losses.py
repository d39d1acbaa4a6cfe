"""No-reference fusion losses (images in [0, 1], shape (N, 1, H, W)).

Each term is a differentiable stand-in for what the fusion metrics reward:

- ``intensity``: L1 to the brighter source, weighted ``background + targets`` (the salient,
  warm targets of the prior must keep their thermal intensity; SCD, MI with the thermal image);
- ``gradient``: L1 between the fused Sobel magnitude and the stronger of the two sources'
  magnitudes, per pixel (Qabf, SF, AG);
- ``ssim``: ``(1 - SSIM(F, ir)) + (1 - SSIM(F, vis))``, 7x7 uniform window (SSIM, VIF);
- ``scd``: ``2 - corr(ir, F - vis) - corr(vis, F - ir)`` per image (SCD: the fused image holds
  what each source adds to the other);
- ``contrast``: ``relu(ratio * max(std(ir), std(vis)) - std(F))`` per image (SD, EN).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch.nn import functional as F

DEFAULT_WEIGHTS = {"intensity": 1.0, "gradient": 30.0, "ssim": 1.0, "scd": 0.5, "contrast": 1.0}


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device,
                      dtype=x.dtype).view(1, 1, 3, 3) / 4.0
    ky = kx.transpose(2, 3)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(p, kx)
    gy = F.conv2d(p, ky)
    return torch.sqrt(gx * gx + gy * gy + 1e-8)


def box_filter(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over ``window`` x ``window`` (valid), per channel, as two 1-D convolutions (much
    faster on CPU than avg_pool2d with stride 1)."""
    c = x.shape[1]
    k = torch.full((c, 1, 1, window), 1.0 / window, device=x.device, dtype=x.dtype)
    x = F.conv2d(x, k, groups=c)
    return F.conv2d(x, k.transpose(2, 3), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7, c1: float = 1e-6,
         c2: float = 9e-6) -> torch.Tensor:
    """Mean SSIM per image (N,), uniform window. The constants are small (the reported SSIM
    uses data_range=2 on 0..255 images, i.e. nearly none), so low-contrast structure counts."""
    stats = box_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, xx, yy, xy = stats.split(1, dim=1)
    sxx = xx - mu_x * mu_x
    syy = yy - mu_y * mu_y
    sxy = xy - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return value.mean(dim=(1, 2, 3))


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=(1, 2, 3), keepdim=True)
    b = b - b.mean(dim=(1, 2, 3), keepdim=True)
    num = (a * b).sum(dim=(1, 2, 3))
    den = torch.sqrt((a * a).sum(dim=(1, 2, 3)) * (b * b).sum(dim=(1, 2, 3)) + 1e-8)
    return num / den


def fusion_losses(fused, ir, vis, targets, weights: Dict[str, float] = None,
                  background: float = 0.2, contrast_ratio: float = 1.1) -> Dict[str, torch.Tensor]:
    """Dict of the weighted terms and their sum under ``"total"``."""
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    terms = {}
    brighter = torch.maximum(ir, vis)
    terms["intensity"] = ((background + targets) * (fused - brighter).abs()).mean()
    g_ref = torch.maximum(sobel_magnitude(ir), sobel_magnitude(vis))
    terms["gradient"] = (sobel_magnitude(fused) - g_ref).abs().mean()
    terms["ssim"] = (2.0 - ssim(fused, ir) - ssim(fused, vis)).mean()
    terms["scd"] = (2.0 - correlation(ir, fused - vis) - correlation(vis, fused - ir)).mean()
    std = lambda t: t.std(dim=(1, 2, 3))  # noqa: E731
    terms["contrast"] = F.relu(contrast_ratio * torch.maximum(std(ir), std(vis)) - std(fused)).mean()
    out = {k: w.get(k, 0.0) * v for k, v in terms.items()}
    out["total"] = sum(out.values())
    return out
