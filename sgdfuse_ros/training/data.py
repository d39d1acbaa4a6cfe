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
Training data: RoadScene TRAIN pairs (never the test split), random crops and flips, seeded.

Every pair is read once and kept in memory as float32 maps in [0, 1]: thermal, visible luminance
(YCrCb Y, the channel the pipeline fuses) and the semantic prior's targets and boundaries
(computed by the thermal fallback prior on the full frame, as the pipeline does without a SAM
checkpoint). A few train pairs are held out for validation (model selection), chosen by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ..errors import InputError
from ..eval.datasets import dataset_pairs, read_pair
from ..eval.target_boxes import label_file, read_boxes
from ..pipeline.images import split_luma
from ..prior.boxes import synthetic_sam_prior
from ..prior.thermal import ThermalPrior


@dataclass
class Sample:
    name: str
    thermal: np.ndarray    # float32 HxW [0, 1]
    visible_y: np.ndarray  # float32 HxW [0, 1]
    targets: np.ndarray    # float32 HxW [0, 1]
    boundaries: np.ndarray  # float32 HxW [0, 1]
    chroma: np.ndarray     # uint8 HxWx2 (for colour output in validation)
    thermal_u8: np.ndarray
    visible_bgr: np.ndarray
    boxes: Optional[list] = None  # labelled person/car boxes (MSRS), for SAM-like priors
    group: str = ''               # the data set it came from (validation is scored per set)


#: every N-th train pair is held out for validation, per data set (RoadScene: 12 of 171 pairs;
#: MSRS: 109 of 1,083)
VAL_EVERY = {'roadscene': 14, 'msrs': 10}


def split_train_names(data_dir, val_every: int = 14) -> tuple:
    """(training names, validation names) from split.json's TRAIN list only."""
    names = [p.name for p in dataset_pairs(data_dir, 'train')]
    if len(names) < 2:
        raise InputError(f'{data_dir}: need at least 2 train pairs, found {len(names)}')
    val = names[val_every // 2::val_every] if val_every > 0 else []
    train = [n for n in names if n not in set(val)]
    return train, val


def validation_pairs(data_dir, val_every: int = 14) -> list:
    """Return the held-out validation pairs of :func:`split_train_names`, in split order."""
    wanted = set(split_train_names(data_dir, val_every)[1])
    return [p for p in dataset_pairs(data_dir, 'train') if p.name in wanted]


def load_samples(data_dir, names: Sequence[str]) -> List[Sample]:
    pairs = {p.name: p for p in dataset_pairs(data_dir, 'train')}
    prior = ThermalPrior()
    out = []
    for name in names:
        if name not in pairs:
            raise InputError(f'{name} is not a train pair of {data_dir}')
        thermal_u8, visible = read_pair(pairs[name])
        if thermal_u8.dtype != np.uint8:
            thermal_u8 = cv2.normalize(thermal_u8, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        if thermal_u8.shape != visible.shape[:2]:
            thermal_u8 = cv2.resize(thermal_u8, (visible.shape[1], visible.shape[0]))
        ir = thermal_u8.astype(np.float32) / 255.0
        vis_y, chroma = split_luma(visible)
        p = prior(ir, vis_y)
        out.append(Sample(name, ir, vis_y, p.targets, p.boundaries, chroma, thermal_u8, visible))
    return out


class CropSampler:
    """
    Sample random ``crop`` x ``crop`` patches with horizontal flips.

    The prior is dropped (set empty) with probability ``empty_prior`` so the stage also works
    without one.
    """

    def __init__(self, samples: List[Sample], crop: int, seed: int, empty_prior: float = 0.15):
        if not samples:
            raise InputError('no training samples')
        small = [s.name for s in samples if min(s.thermal.shape) < crop]
        if small:
            raise InputError(f'crop {crop} is larger than image {small[0]}')
        self.samples = samples
        self.crop = int(crop)
        self.empty_prior = float(empty_prior)
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def batch(self, size: int) -> np.ndarray:
        """float32 array (size, 4, crop, crop): thermal, visible_y, targets, boundaries."""
        c = self.crop
        out = np.empty((size, 4, c, c), np.float32)
        for i in range(size):
            s = self.samples[int(self.rng.integers(len(self.samples)))]
            h, w = s.thermal.shape
            y = int(self.rng.integers(h - c + 1))
            x = int(self.rng.integers(w - c + 1))
            flip = bool(self.rng.integers(2))
            for k, plane in enumerate((s.thermal, s.visible_y, s.targets, s.boundaries)):
                patch = plane[y:y + c, x:x + c]
                out[i, k] = patch[:, ::-1] if flip else patch
            if self.rng.random() < self.empty_prior:
                out[i, 2:] = 0.0
        return out


# --------------------------------------------------------------------------------------------
# Several data sets (RoadScene + MSRS): labelled boxes, mixed batches, SAM-like priors
# --------------------------------------------------------------------------------------------

def attach_boxes(samples: List[Sample], data_dir, group: str) -> List[Sample]:
    """
    Tag ``samples`` with their data set and, where it has them, the labelled boxes.

    Boxes come from ``labels/infrared/train/NAME.txt`` (MSRS layout; person and car); a folder
    without labels leaves ``boxes`` None.
    """
    labelled = (Path(data_dir) / 'labels' / 'infrared' / 'train').is_dir()
    for s in samples:
        s.group = group
        if labelled:
            s.boxes = read_boxes(label_file(data_dir, 'train', s.name), s.thermal.shape)
    return samples


class MixedCropSampler(CropSampler):
    """
    Crops from several data sets, an equal share of each in every batch (item i from set i % n).

    With probability ``sam_share`` a crop of a sample with labelled boxes gets a SAM-like prior
    drawn from its boxes (:func:`sgdfuse_ros.prior.boxes.synthetic_sam_prior`, outlines
    jittered) instead of the thermal fallback, so SAM priors are not out of distribution; the
    rest keep the fallback prior (what the pipeline uses without SAM), ``empty_prior`` of all
    crops get none.
    """

    def __init__(self, groups: List[List[Sample]], crop: int, seed: int,
                 empty_prior: float = 0.15, sam_share: float = 0.3):
        groups = [g for g in groups if g]
        super().__init__([s for g in groups for s in g], crop, seed, empty_prior)
        self.groups = groups
        self.sam_share = float(sam_share)

    def _prior(self, s: Sample):
        if s.boxes and self.rng.random() < self.sam_share:
            p = synthetic_sam_prior(s.thermal, s.boxes, self.rng)
            return p.targets, p.boundaries
        return s.targets, s.boundaries

    def batch(self, size: int) -> np.ndarray:
        c = self.crop
        out = np.empty((size, 4, c, c), np.float32)
        for i in range(size):
            group = self.groups[i % len(self.groups)]
            s = group[int(self.rng.integers(len(group)))]
            h, w = s.thermal.shape
            y = int(self.rng.integers(h - c + 1))
            x = int(self.rng.integers(w - c + 1))
            flip = bool(self.rng.integers(2))
            targets, boundaries = self._prior(s)
            for k, plane in enumerate((s.thermal, s.visible_y, targets, boundaries)):
                patch = plane[y:y + c, x:x + c]
                out[i, k] = patch[:, ::-1] if flip else patch
            if self.rng.random() < self.empty_prior:
                out[i, 2:] = 0.0
        return out
