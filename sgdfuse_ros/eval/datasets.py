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
``SGDFUSE_DATA`` environment variable (CI sets it to the RoadScene folder).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from .. import image_decode
from ..errors import first_line, InputError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


@dataclass(frozen=True)
class Pair:
    name: str        # stem, e.g. FLIR_00211
    thermal: Path
    visible: Path


def default_data_dir(beside_checkout: bool = False) -> Optional[Path]:
    """
    Return $SGDFUSE_DATA, else None: the commands' default data folder.

    ``beside_checkout`` (tests and benchmarks of a source checkout only): else
    ``../shared/data/roadscene`` beside the repository, where it exists. The commands never
    look there: an installed tool has no such folder, and its ``--help`` names no such path.
    """
    env = os.environ.get('SGDFUSE_DATA')
    if env:
        return Path(env)
    if not beside_checkout:
        return None
    # sgdfuse_ros/eval/datasets.py -> the checkout's folder -> ../shared/data/roadscene
    beside = Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'roadscene'
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


#: largest split file read (RoadScene's is 8 kB, MSRS's 30 kB)
MAX_SPLIT_BYTES = 16 * 1024 * 1024


def read_split(split_file: Path, subset: str) -> List[str]:
    """
    Return the image names (stems) that ``split_file`` lists under ``subset``.

    The one reader of split files (``evaluate``, ``make-bag``, ``metrics``, ``train``): the file
    must hold a JSON object whose ``subset`` is a list of distinct, non-empty file names or
    stems; anything else is one :class:`InputError` line naming the file and what is wrong.
    """
    split_file = Path(split_file)
    try:
        with split_file.open('rb') as handle:
            data = handle.read(MAX_SPLIT_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f'split file not found: {split_file}') from None
    except OSError as err:
        raise InputError(f'cannot read split file {split_file}: {err.strerror or err}') from None
    if len(data) > MAX_SPLIT_BYTES:
        raise InputError(f'split file {split_file} is larger than '
                         f'{MAX_SPLIT_BYTES // (1024 * 1024)} MB; not read')
    try:
        split = json.loads(data.decode('utf-8'))
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise InputError(f'split file {split_file} is not valid JSON '
                         f'({first_line(err, 120, type(err).__name__)})') from None
    if not isinstance(split, dict):
        raise InputError(f'split file {split_file} must hold a JSON object {{"subset": [names]}}, '
                         f'not {_json_kind(split)}')
    names = split.get(subset)
    if not isinstance(names, list):
        keys = [str(k) for k, v in split.items() if isinstance(v, list)]
        raise InputError(f"split file {split_file} has no list '{subset}' "
                         f"(lists: {', '.join(keys)[:200] or 'none'})")
    stems = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"split file {split_file}: '{subset}'[{i}] is {_json_kind(name)}, "
                             f'not an image name')
        stems.append(image_stem(name))
    seen = set()
    for stem in stems:
        if stem in seen:
            raise InputError(f"split file {split_file}: '{subset}' lists {stem} more than once")
        seen.add(stem)
    return stems


def image_stem(name: str) -> str:
    """``FLIR_001.jpg`` -> ``FLIR_001``; a name without an image suffix is kept whole."""
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name


def _json_kind(value) -> str:
    if value is None:
        return 'null'
    kind = {bool: 'a boolean', list: 'a list', dict: 'an object', str: 'a string'}.get(
        type(value), 'a number')
    return f'{kind} ({json.dumps(value)[:40]})'


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


# --- choosing pairs: the one reading of --data/--ir/--vis/--split/--subset/--time-of-day/--limit -

#: MSRS names mark the time of day in the last character of the stem: 00001D day, 00003N night
TIMES_OF_DAY = {'day': 'D', 'night': 'N'}


def time_of_day(name: str) -> Optional[str]:
    """Return 'day' or 'night' for an MSRS-style name (``00001D``, ``00003N.png``), else None."""
    stem = image_stem(name)
    for when, mark in TIMES_OF_DAY.items():
        if len(stem) > 1 and stem.endswith(mark) and stem[:-1].isdigit():
            return when
    return None


def split_used(data=None, ir=None, vis=None, split=None, subset=None) -> Optional[Path]:
    """Return the split file :func:`choose_pairs` reads (an input of the run), if any."""
    if split:
        return Path(split)
    if subset and not (ir or vis) and data:
        return Path(data) / 'split.json'
    return None


def choose_pairs(data=None, ir=None, vis=None, split=None, subset=None,
                 when: Optional[str] = None, limit: int = 0) -> List[Pair]:
    """
    Return the pairs a command reads, chosen the same way by every command.

    Sources: ``ir`` and ``vis`` folders, or a RoadScene-layout ``data`` folder (``ir/``,
    ``vis/``, ``split.json``). Names: the ``subset`` list of ``split`` (default: the data
    folder's ``split.json``; ``subset`` defaults to ``test`` when a split file is given), else
    every pair. Then ``when`` ('day' or 'night', MSRS naming: :func:`time_of_day`) keeps the
    pairs of that time of day, and ``limit`` > 0 the first ``limit`` of them (in name order,
    or the split's order). Each refusal is one :class:`InputError` line.
    """
    if ir or vis:
        if not (ir and vis):
            raise InputError('--ir and --vis go together')
        if data:
            raise InputError('give either --ir/--vis or --data, not both')
        if subset and not split:
            raise InputError('--subset with --ir/--vis needs --split FILE (or use --data DIR '
                             'with its split.json)')
        ir_dir, vis_dir = Path(ir), Path(vis)
    else:
        if not data:
            raise InputError('no pairs: give --data DIR (or --ir DIR --vis DIR), or set '
                             'SGDFUSE_DATA')
        data = Path(data)
        if not data.is_dir():
            raise InputError(f'data folder not found: {data}')
        ir_dir, vis_dir = data / 'ir', data / 'vis'
    split_file = split_used(data, ir, vis, split, subset)
    names = read_split(split_file, subset or 'test') if split_file else None
    pairs = list_pairs(ir_dir, vis_dir, names)
    if when:
        if when not in TIMES_OF_DAY:
            raise InputError(f'--time-of-day {when!r}: day or night')
        chosen = [p for p in pairs if time_of_day(p.name) == when]
        if not chosen:
            marked = sum(time_of_day(p.name) is not None for p in pairs)
            raise InputError(f'--time-of-day {when}: none of the {len(pairs)} pairs is a {when} '
                             f'frame ({marked} carry a day/night mark: MSRS names end in '
                             f"{TIMES_OF_DAY['day']} for day, {TIMES_OF_DAY['night']} for "
                             'night)')
        pairs = chosen
    return pairs[:limit] if limit and limit > 0 else pairs


def read_image(path: Path, max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode an image file the one way (:func:`read_image_file`, as stored)."""
    return read_image_file(path, max_pixels).decode()


def read_pair(pair: Pair, max_pixels: Optional[int] = None):
    """(thermal as a single-channel array, visible as BGR uint8): :func:`load_pair`'s inputs."""
    thermal, visible, _, _ = load_pair(pair, max_pixels, for_scoring=False)
    return thermal, visible


# --- one reading of a file ------------------------------------------------------------------


def truncated(data: bytes) -> bool:
    """Tell a PNG without its IEND chunk or a JPEG without its end marker (a cut file)."""
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return b'IEND' not in data[-16:]
    if data[:2] == b'\xff\xd8':
        return b'\xff\xd9' not in data[-64:]
    return False


@dataclass
class ImageFile:
    """One image file read once: its bytes, decoded once (:mod:`..pipeline.image_decode`)."""

    path: Path
    data: np.ndarray
    max_pixels: Optional[int] = None

    def decode(self) -> np.ndarray:
        """Return the image as stored (uint8/uint16, HxW or HxWx3/4); one line if it cannot."""
        try:
            return image_decode.decode_image(self.data, self.max_pixels, str(self.path))
        except image_decode.SizeRefused as err:
            raise InputError(f'{self.path}: {err}') from None
        except InputError as err:
            raise InputError(f'cannot decode {self.path}: {err}') from None


def read_image_file(path: Path, max_pixels: Optional[int] = None) -> ImageFile:
    """
    Read ``path`` once and check it before decoding.

    Refused with one line: unreadable, empty, larger than any allowed image could be, a format
    whose size cannot be read from its header, an empty image or more pixels than
    ``max_pixels`` (None: the default ``limits.max_input_pixels``) according to its header,
    truncated (PNG/JPEG end marker missing).
    """
    path = Path(path)
    data = image_decode.read_file_bytes(path, max_pixels)
    if not data:
        raise InputError(f'{path} is empty')
    try:
        image_decode.check_header(image_decode.read_header(data),
                                  image_decode.default_max_pixels() if max_pixels is None
                                  else max_pixels)
    except image_decode.SizeRefused as err:
        raise InputError(f'{path}: {err}') from None
    except InputError as err:
        raise InputError(f'cannot decode {path}: {err}') from None
    if truncated(data):
        raise InputError(f'{path} is truncated (its end marker is missing)')
    return ImageFile(path, np.frombuffer(data, np.uint8), max_pixels)


def load_pair(pair: Pair, max_pixels: Optional[int] = None, for_scoring: bool = True) -> tuple:
    """
    ``(thermal, visible, thermal_colour, visible_colour)`` from one reading of each file.

    Both files are decoded the same way, once, as stored (no EXIF rotation, no colour or depth
    conversion by the decoder: :func:`~sgdfuse_ros.pipeline.image_decode.decode_image`);
    every view is taken from that array. ``thermal`` is single-channel (8 or 16 bit, a colour
    file's luminance), ``visible`` uint8 BGR; ``*_colour`` are the views the reference
    evaluator scores (``IMREAD_COLOR`` without rotation: 16 bits to their high byte, gray
    repeated, alpha dropped), for scoring (None without ``for_scoring``).
    """
    ir_file = read_image_file(pair.thermal, max_pixels)
    vis_file = read_image_file(pair.visible, max_pixels)
    ir, vis = ir_file.decode(), vis_file.decode()
    thermal = image_decode.as_thermal(ir)
    visible = image_decode.as_visible(vis)
    thermal_colour = image_decode.as_reference_colour(ir) if for_scoring else None
    return thermal, visible, thermal_colour, visible if for_scoring else None
