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

"""Synthetic thermal/visible scenes with known warm targets, and a config, for the prior tests."""

import cv2
import numpy as np
from sgdfuse_ros.config import validate
from sgdfuse_ros.parameters import defaults


def config_with(values: dict) -> dict:
    """
    Return the parameter table's defaults with ``values``, validated.

    Independent of the YAML file in the checkout, with the classical first stage and no refiner:
    these tests are about the prior.
    """
    config = defaults()
    config.update(validate({'first_stage.type': 'laplacian', 'refiner.steps': 0, **values}))
    return config


def warm_scene(shape=(512, 640), targets=None, seed=0, noise=0.02):
    """
    (thermal float32 [0, 1], visible BGR uint8, list of bool target masks).

    A cool background with a vertical gradient and structured clutter, plus warm ellipses
    (people- and car-sized at 640 wide) that are 0.25-0.4 warmer than their surroundings.
    """
    h, w = shape
    rng = np.random.default_rng(seed)
    s = w / 640.0
    if targets is None:
        targets = [(0.22, 0.55, 18, 45, 0.40), (0.55, 0.60, 14, 36, 0.30),
                   (0.80, 0.45, 50, 25, 0.25), (0.40, 0.25, 10, 10, 0.35)]
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    thermal = 0.30 + 0.08 * yy + np.zeros((h, w), np.float32)
    clutter = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 8 * s)
    thermal += 0.03 * clutter / (np.abs(clutter).max() + 1e-6)
    masks = []
    for cx, cy, ax, ay, dt in targets:
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (int(cx * w), int(cy * h)), (max(1, int(ax * s)), max(1, int(ay * s))),
                    0, 0, 360, 1, -1)
        masks.append(mask.astype(bool))
        thermal[mask.astype(bool)] += dt
    thermal += rng.normal(0, noise, (h, w)).astype(np.float32)
    thermal = np.clip(thermal, 0, 1).astype(np.float32)
    visible = np.zeros((h, w, 3), np.uint8)
    visible[:] = (90, 110, 120)
    visible[int(0.6 * h):] = (60, 60, 60)  # road
    cv2.rectangle(visible, (int(0.05 * w), int(0.1 * h)), (int(0.3 * w), int(0.4 * h)),
                  (40, 80, 160), -1)
    for m in masks:
        visible[m] = (150, 150, 200)
    visible = cv2.add(visible, rng.integers(0, 12, visible.shape, dtype=np.uint8))
    return thermal, visible, masks


def iou(a, b):
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0
