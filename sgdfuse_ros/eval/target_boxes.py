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
Target preservation measured with human-annotated boxes (MSRS labels), not with our own prior.

For every labelled person or car box whose thermal image shows it warm (box mean at least
``WARM_LEVELS`` grey levels above a surrounding ring), the box-vs-ring contrast of the fused image
is divided by the same contrast in the thermal image: 1 = the target stands out exactly as much
as in the thermal camera, 0.5 = it lost half its contrast. Reported as the median ratio and the
share of boxes with a ratio >= ``KEPT`` (0.95), for night (``...N``) and day (``...D``) frames
separately.

Boxes are YOLO lines ``class cx cy w h`` (normalised) in ``labels/infrared/<subset>/NAME.txt``
(the set drawn on the thermal image, which the measure reads). A box covers the pixels from
``floor(x0)`` to ``ceil(x1)`` (at least one pixel); its ring is the box grown by ``ring`` pixels
on every side (clipped to the image) minus the box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from .datasets import read_pair
from .metrics import to_gray
from ..errors import InputError
from ..prior.boxes import synthetic_sam_prior

#: classes of ``labels/classes.txt`` measured: 0 person, 2 car (1 bicycle is left out)
TARGET_CLASSES = (0, 2)
WARM_LEVELS = 10.0
RING = 4
KEPT = 0.95

Box = Tuple[int, int, int, int, int]  # class, x0, y0, x1, y1 (pixels, end exclusive)


def read_boxes(label_file, shape: Sequence[int], classes: Iterable[int] = TARGET_CLASSES
               ) -> List[Box]:
    """Pixel boxes of a YOLO label file for an image of ``shape`` (H, W); missing file = none."""
    path = Path(label_file)
    if not path.is_file():
        return []
    h, w = int(shape[0]), int(shape[1])
    wanted = {int(c) for c in classes}
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            cx, cy, bw, bh = (float(v) for v in parts[1:5])
        except (ValueError, IndexError):
            raise InputError(f'{path}:{number}: not a YOLO box line: {line[:60]!r}') from None
        if cls not in wanted:
            continue
        x0 = max(int(np.floor((cx - bw / 2) * w)), 0)
        y0 = max(int(np.floor((cy - bh / 2) * h)), 0)
        x1 = min(max(int(np.ceil((cx + bw / 2) * w)), x0 + 1), w)
        y1 = min(max(int(np.ceil((cy + bh / 2) * h)), y0 + 1), h)
        if x1 > x0 and y1 > y0:
            out.append((cls, x0, y0, x1, y1))
    return out


def label_file(data_dir, subset: str, name: str) -> Path:
    """Return the infrared-drawn label file of pair ``name`` (stem) in ``subset``."""
    return Path(data_dir) / 'labels' / 'infrared' / subset / f'{name}.txt'


def box_and_ring(box: Box, shape: Sequence[int], ring: int = RING):
    """Boolean masks (box, ring) of a pixel box."""
    h, w = int(shape[0]), int(shape[1])
    _, x0, y0, x1, y1 = box
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    around = np.zeros((h, w), bool)
    around[max(y0 - ring, 0):y1 + ring, max(x0 - ring, 0):x1 + ring] = True
    around &= ~inside
    return inside, around


def warm_boxes(thermal: np.ndarray, boxes: List[Box], ring: int = RING,
               warm: float = WARM_LEVELS) -> List[dict]:
    """Return the boxes the thermal image (grey levels 0..255) shows warm, with masks."""
    thermal = np.asarray(thermal, np.float64)
    out = []
    for box in boxes:
        inside, around = box_and_ring(box, thermal.shape, ring)
        if not around.any():
            continue
        contrast = float(thermal[inside].mean() - thermal[around].mean())
        if contrast >= warm:
            out.append({'box': box, 'inside': inside, 'ring': around,
                        'thermal_contrast': contrast})
    return out


def contrast_ratios(fused_gray: np.ndarray, warm: List[dict]) -> List[float]:
    """Fused box-vs-ring contrast / thermal box-vs-ring contrast, per warm box."""
    fused = np.asarray(fused_gray, np.float64)
    return [float((fused[b['inside']].mean() - fused[b['ring']].mean()) / b['thermal_contrast'])
            for b in warm]


def load_boxed(pairs, data_dir, subset: str) -> list:
    """Read each pair and its labelled boxes: ``[(pair, thermal, visible, boxes, warm)]``."""
    out = []
    for pair in pairs:
        thermal, visible = read_pair(pair)
        boxes = read_boxes(label_file(data_dir, subset, pair.name), thermal.shape)
        out.append((pair, thermal, visible, boxes, warm_boxes(thermal, boxes)))
    return out


def fused_ratios(pipeline, boxed, prior_mode: str = 'pipeline') -> Dict[str, List[float]]:
    """
    Fuse every pair of ``boxed`` (:func:`load_boxed`) with ``pipeline``: ``{name: ratios}``.

    ``prior_mode`` ``boxes``: the prior comes from the labelled boxes, in the SAM path's format
    (:func:`sgdfuse_ros.prior.boxes.synthetic_sam_prior`), instead of the pipeline's own.
    """
    ratios = {}
    for pair, thermal, visible, boxes, warm in boxed:
        prior = None
        if prior_mode == 'boxes':
            prior = synthetic_sam_prior(thermal.astype(np.float32) / 255.0, boxes)
        result = pipeline.process(thermal, visible, prior=prior)
        ratios[pair.name] = contrast_ratios(to_gray(result.fused_bgr), warm)
    return ratios


def is_night(name: str) -> bool:
    """MSRS names end in N (night) or D (day)."""
    return Path(name).stem.upper().endswith('N')


def summarise(ratios_by_name: Dict[str, List[float]], kept: float = KEPT) -> dict:
    """Median and share >= ``kept``: all boxes, night frames, day frames."""
    groups = {'all': [], 'night': [], 'day': []}
    for name, ratios in ratios_by_name.items():
        groups['all'] += ratios
        groups['night' if is_night(name) else 'day'] += ratios
    out = {}
    for key, values in groups.items():
        arr = np.asarray(values, np.float64)
        out[key] = {'boxes': int(arr.size),
                    'median': float(np.median(arr)) if arr.size else float('nan'),
                    'kept': float((arr >= kept).mean()) if arr.size else float('nan')}
    return out


# --- published targets against the boxes (benchmarks/targets.py) -------------------------------

#: a pixel of the mono8 targets map counts as target from this value (0.25 of full strength)
TARGET_LEVEL = 64
COVERED = 0.3  # a warm box is found when at least this share of it is target
GROW = 1.25    # precision: target pixels inside a labelled box grown by this factor count


def grown_boxes_mask(boxes: List[Box], shape: Sequence[int], grow: float = GROW) -> np.ndarray:
    """Boolean mask of ``boxes`` (any class), each grown by ``grow`` about its centre."""
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), bool)
    for _, x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        half_w, half_h = (x1 - x0) * grow / 2.0, (y1 - y0) * grow / 2.0
        out[max(int(np.floor(cy - half_h)), 0):max(int(np.ceil(cy + half_h)), 0),
            max(int(np.floor(cx - half_w)), 0):max(int(np.ceil(cx + half_w)), 0)] = True
    return out


def target_counts(target: np.ndarray, warm: List[dict], grown: np.ndarray,
                  covered: float = COVERED) -> dict:
    """
    Count one frame: warm boxes, found boxes, target pixels, target pixels inside ``grown``.

    A box is found when ``covered`` of it is target; ``grown``: :func:`grown_boxes_mask`;
    ``target``: boolean HxW.
    """
    target = np.asarray(target, bool)
    return {'warm': len(warm),
            'found': int(sum(target[b['inside']].mean() >= covered for b in warm)),
            'pixels': int(target.sum()), 'inside': int((target & grown).sum())}


def recall_precision(counts_by_name: Dict[str, dict]) -> dict:
    """Recall (found / warm boxes) and precision (inside / target pixels): all, night, day."""
    groups = {'all': [], 'night': [], 'day': []}
    for name, counts in counts_by_name.items():
        groups['all'].append(counts)
        groups['night' if is_night(name) else 'day'].append(counts)
    out = {}
    for key, items in groups.items():
        total = {k: sum(c[k] for c in items) for k in ('warm', 'found', 'pixels', 'inside')}
        total['recall'] = total['found'] / total['warm'] if total['warm'] else float('nan')
        total['precision'] = (total['inside'] / total['pixels'] if total['pixels']
                              else float('nan'))
        total['frames'] = len(items)
        out[key] = total
    return out
