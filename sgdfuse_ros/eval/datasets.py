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
    found: dict = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.setdefault(p.stem, []).append(p)
    duplicates = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if duplicates:
        stem, paths = next(iter(duplicates.items()))
        raise InputError(f'{folder} holds {len(duplicates)} image name(s) with more than one '
                         f"file (first: {', '.join(p.name for p in paths)}); pairs are matched "
                         f'by name, so keep one file per name')
    return {stem: paths[0] for stem, paths in found.items()}


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


# --- one reading of a file ------------------------------------------------------------------


def header_size(data: bytes) -> Optional[tuple]:
    """``(width, height)`` from a PNG or JPEG header, before any decoding; None otherwise."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) >= 24 and data[12:16] == b'IHDR':
        return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
    if data[:2] == b'\xff\xd8':
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], 'big')
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return (int.from_bytes(data[i + 7:i + 9], 'big'),
                        int.from_bytes(data[i + 5:i + 7], 'big'))
            i += 2 + length
    return None


def truncated(data: bytes) -> bool:
    """Tell a PNG without its IEND chunk or a JPEG without its end marker (a cut file)."""
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return b'IEND' not in data[-16:]
    if data[:2] == b'\xff\xd8':
        return b'\xff\xd9' not in data[-64:]
    return False


@dataclass
class ImageFile:
    """One image file read once: its bytes, and the decodings taken from those bytes."""

    path: Path
    data: np.ndarray

    def decode(self, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
        try:
            image = cv2.imdecode(self.data, flags)
        except cv2.error:
            image = None
        if image is None or image.size == 0:
            raise InputError(f'cannot decode {self.path} (not an image, or corrupt)')
        return image


def read_image_file(path: Path, max_pixels: int = 0) -> ImageFile:
    """
    Read ``path`` once and check it before decoding.

    Refused with one line: unreadable, empty, truncated (PNG/JPEG end marker missing), or more
    pixels than ``max_pixels`` according to its header.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f'cannot read {path}: {err.strerror or err}') from None
    if not data:
        raise InputError(f'{path} is empty')
    size = header_size(data)
    if size is not None:
        width, height = size
        if width == 0 or height == 0:
            raise InputError(f'{path}: header says {width}x{height} pixels')
        if max_pixels and width * height > max_pixels:
            raise InputError(f'{path}: {width}x{height} pixels is more than '
                             f'limits.max_input_pixels={max_pixels} (from its header)')
    if truncated(data):
        raise InputError(f'{path} is truncated (its end marker is missing)')
    return ImageFile(path, np.frombuffer(data, np.uint8))


def load_pair(pair: Pair, max_pixels: int = 0, for_scoring: bool = True) -> tuple:
    """
    ``(thermal, visible, thermal_colour, visible_colour)`` from one reading of each file.

    ``thermal`` and ``visible`` are what :func:`read_pair` gives (the fusion's inputs);
    ``*_colour`` are the same bytes decoded as the reference evaluator reads a file
    (``IMREAD_COLOR``), for scoring (None without ``for_scoring``).
    """
    ir_file = read_image_file(pair.thermal, max_pixels)
    vis_file = read_image_file(pair.visible, max_pixels)
    thermal = ir_file.decode(cv2.IMREAD_UNCHANGED)
    if thermal.ndim == 3:
        thermal = cv2.cvtColor(thermal[..., :3], cv2.COLOR_BGR2GRAY)
    thermal_colour = ir_file.decode(cv2.IMREAD_COLOR) if for_scoring else None
    visible = vis_file.decode(cv2.IMREAD_COLOR)
    return thermal, visible, thermal_colour, visible if for_scoring else None
