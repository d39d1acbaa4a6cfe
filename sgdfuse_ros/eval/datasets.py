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
Registered thermal/visible pairs on disk (RoadScene layout: ir/, vis/, split.json).

The data are never copied into the repository: commands take ``--data DIR`` or read the
``SGDFUSE_DATA`` environment variable (CI sets it to ../shared/data/roadscene).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from ..errors import InputError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


@dataclass(frozen=True)
class Pair:
    name: str        # stem, e.g. FLIR_00211
    thermal: Path
    visible: Path


def default_data_dir() -> Optional[Path]:
    """$SGDFUSE_DATA, else ../shared/data/roadscene beside the repository, else None."""
    env = os.environ.get('SGDFUSE_DATA')
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'roadscene'
    return beside if beside.is_dir() else None


def _images(folder: Path) -> dict:
    if not folder.is_dir():
        raise InputError(f'folder not found: {folder}')
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def read_split(split_file: Path, subset: str) -> List[str]:
    try:
        split = json.loads(Path(split_file).read_text())
    except FileNotFoundError:
        raise InputError(f'split file not found: {split_file}') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f'split file {split_file} is not valid JSON ({err})') from None
    if subset not in split or not isinstance(split[subset], list):
        keys = [k for k, v in split.items() if isinstance(v, list)]
        raise InputError(f"split file {split_file} has no list '{subset}' "
                         f"(has: {', '.join(keys)})")
    return [Path(n).stem for n in split[subset]]


def list_pairs(ir_dir, vis_dir, names: Optional[List[str]] = None) -> List[Pair]:
    """Pairs matched by file stem. Unpaired files are an error (named in the message)."""
    ir, vis = _images(Path(ir_dir)), _images(Path(vis_dir))
    if names is None:
        only_ir, only_vis = sorted(set(ir) - set(vis)), sorted(set(vis) - set(ir))
        if only_ir or only_vis:
            first = (only_ir or only_vis)[0]
            raise InputError(f'unpaired images: {len(only_ir)} only in {ir_dir}, {len(only_vis)} '
                             f'only in {vis_dir} (first: {first})')
        names = sorted(ir)
    missing = [n for n in names if n not in ir or n not in vis]
    if missing:
        raise InputError(f'{len(missing)} listed pairs are missing (first: {missing[0]})')
    if not names:
        raise InputError(f'no images found in {ir_dir} and {vis_dir}')
    return [Pair(n, ir[n], vis[n]) for n in names]


def dataset_pairs(data_dir, subset: Optional[str] = None) -> List[Pair]:
    """Pairs of a RoadScene-layout folder, optionally one subset of its split.json."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f'data folder not found: {data_dir}')
    names = read_split(data_dir / 'split.json', subset) if subset else None
    return list_pairs(data_dir / 'ir', data_dir / 'vis', names)


def read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise InputError(f'cannot read image: {path}')
    return image


def read_pair(pair: Pair):
    """(thermal as a single-channel array, visible as BGR or gray uint8)."""
    thermal = read_image(pair.thermal)
    if thermal.ndim == 3:  # thermal saved as 3-channel: take its luminance
        thermal = cv2.cvtColor(thermal[..., :3], cv2.COLOR_BGR2GRAY)
    visible = read_image(pair.visible, cv2.IMREAD_COLOR)
    return thermal, visible
