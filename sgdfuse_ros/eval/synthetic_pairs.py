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
A synthetic, registered thermal/visible sample that the repository generates itself.

The main job (``sgdfuse demo``) and the tests need pairs on a machine that has no dataset. The
scenes are procedural night-time street views, seeded: the visible camera sees the textured
background (buildings, windows, road markings, foliage) while people and a car engine are nearly
invisible in it; the thermal camera sees the warm targets and little texture. Good fusion keeps
both, so the sample exercises what matters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np


def _noise(rng, shape, scale):
    small = rng.standard_normal((max(2, shape[0] // scale), max(2, shape[1] // scale)))
    return cv2.resize(small.astype(np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_CUBIC)


def _person(mask, x, y, h):
    """Draw a person silhouette of height h with feet at (x, y)."""
    w = max(2, h // 4)
    head = max(2, h // 8)
    cv2.ellipse(mask, (x, y - h + head), (head, head), 0, 0, 360, 1.0, -1)
    cv2.rectangle(mask, (x - w // 2, y - h + 2 * head), (x + w // 2, y - h // 2 + head), 1.0, -1)
    cv2.rectangle(mask, (x - w // 2, y - h // 2 + head), (x - 1, y), 1.0, -1)
    cv2.rectangle(mask, (x + 1, y - h // 2 + head), (x + w // 2, y), 1.0, -1)


def make_pair(seed: int = 0, size: Tuple[int, int] = (640, 480)):
    """(thermal uint8 HxW, visible uint8 HxWx3, target mask bool HxW) for one scene."""
    w, h = size
    rng = np.random.default_rng(seed)
    horizon = int(h * rng.uniform(0.38, 0.5))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    # --- visible: dim night scene with texture ---------------------------------------------------
    vis = np.zeros((h, w, 3), np.float32)
    sky = 20 + 25 * (1 - yy / max(horizon, 1))
    vis[:] = np.stack([sky * 1.3, sky * 1.0, sky * 0.8], -1)
    road = yy >= horizon
    vis[road] = (55, 55, 58)
    vis += 10 * _noise(rng, (h, w), 3)[..., None]
    thermal = 0.35 + 0.05 * (yy - horizon) / h            # road warmer than sky near the camera
    thermal[~road] = 0.22 - 0.05 * (1 - yy[~road] / max(horizon, 1))
    # buildings with lit windows (visible texture, lukewarm in thermal)
    x = 0
    while x < w:
        bw = int(rng.integers(w // 10, w // 4))
        top = int(horizon - rng.integers(h // 8, int(horizon * 0.9) + 1))
        colour = rng.uniform(40, 90, 3)
        vis[top:horizon, x:x + bw] = colour
        thermal[top:horizon, x:x + bw] = rng.uniform(0.3, 0.4)
        for wy in range(top + 6, horizon - 8, 14):
            for wx in range(x + 4, x + bw - 8, 12):
                if rng.random() < 0.55:
                    vis[wy:wy + 7, wx:wx + 6] = rng.uniform(150, 240) * np.array([0.8, 0.95, 1.0])
                    thermal[wy:wy + 7, wx:wx + 6] += 0.03
        x += bw + int(rng.integers(0, w // 20))
    # lane markings (visible only)
    for i in range(8):
        t = i / 8
        y0 = int(horizon + (h - horizon) * t ** 1.5)
        y1 = int(horizon + (h - horizon) * ((i + 0.5) / 8) ** 1.5)
        half = 1 + int(6 * t)
        cv2.rectangle(vis, (w // 2 - half, y0), (w // 2 + half, y1), (200, 200, 200), -1)
    # foliage texture
    for _ in range(3):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(horizon // 2, horizon + 1))
        r = int(rng.integers(h // 12, h // 6))
        blob = np.zeros((h, w), np.float32)
        cv2.circle(blob, (cx, cy), r, 1.0, -1)
        leaves = 30 + 25 * _noise(rng, (h, w), 2)
        for c, gain in enumerate((0.6, 1.2, 0.7)):
            vis[..., c] = np.where(blob > 0, leaves * gain, vis[..., c])
        thermal = np.where(blob > 0, 0.28 + 0.02 * _noise(rng, (h, w), 2), thermal)

    # --- targets: people and a car (warm in thermal, dark in visible) ----------------------------
    targets = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        fy = int(rng.integers(horizon + (h - horizon) // 6, h - 2))
        ph = int((fy - horizon) * 0.7) + 10
        _person(targets, int(rng.integers(ph // 4 + 1, w - ph // 4 - 1)), fy, ph)
    car = np.zeros((h, w), np.float32)
    cy = int(horizon + (h - horizon) * 0.55)
    cw = int(w * 0.18)
    cx = int(rng.integers(0, w - cw))
    cv2.rectangle(car, (cx, cy - cw // 3), (cx + cw, cy), 1.0, -1)
    vis = np.where(car[..., None] > 0, np.array([35, 30, 30], np.float32), vis)
    thermal = np.where(car > 0, 0.45, thermal)
    # the engine
    cv2.rectangle(thermal, (cx + cw - cw // 4, cy - cw // 4), (cx + cw, cy - 2), 0.85, -1)
    vis = np.where(targets[..., None] > 0, np.array([28, 26, 30], np.float32) +
                   4 * _noise(rng, (h, w), 4)[..., None], vis)
    thermal = np.where(targets > 0, 0.8 + 0.08 * _noise(rng, (h, w), 6), thermal)
    thermal = cv2.GaussianBlur(thermal, (0, 0), 1.2) + 0.012 * rng.standard_normal((h, w))

    vis_u8 = np.clip(vis, 0, 255).astype(np.uint8)
    ir_u8 = np.clip(thermal * 255, 0, 255).astype(np.uint8)
    return ir_u8, vis_u8, (targets > 0) | (car > 0)


def write_sample(out_dir, n: int = 4, size: Tuple[int, int] = (640, 480),
                 seed: int = 0) -> Tuple[Path, Path]:
    """Write ``n`` pairs as ``ir/``, ``vis/`` PNGs and a ``split.json`` (all pairs in "test")."""
    out_dir = Path(out_dir)
    ir_dir, vis_dir = out_dir / 'ir', out_dir / 'vis'
    ir_dir.mkdir(parents=True, exist_ok=True)
    vis_dir.mkdir(parents=True, exist_ok=True)
    names: List[str] = []
    for i in range(n):
        ir, vis, _ = make_pair(seed + i, size)
        name = f'sample_{i:03d}.png'
        cv2.imwrite(str(ir_dir / name), ir)
        cv2.imwrite(str(vis_dir / name), vis)
        names.append(name)
    (out_dir / 'split.json').write_text(json.dumps({'train': [], 'test': names}, indent=1))
    return ir_dir, vis_dir
