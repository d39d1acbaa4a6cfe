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
Folders of fused images scored against their sources; summaries and tables of the results.

:func:`percentile_summary` is the one percentile summary of the package.

The measures themselves are :mod:`sgdfuse_ros.eval.metrics`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from .metrics import (_check_names, frame_metrics, fusion_metrics, HEADLINE_METRICS,
                      METRIC_NAMES, read_gray)
from ..errors import InputError

__all__ = ['IMAGE_EXTENSIONS', 'score_folders', 'format_table', 'percentile_summary']

#: Extensions tried, in this order, when a file is looked up by its stem.
IMAGE_EXTENSIONS: Tuple[str, ...] = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


# --------------------------------------------------------------------------- folders


def find_image(folder: Path, name: str) -> Optional[Path]:
    """``folder/name`` if it exists, else the first ``folder/<stem><ext>`` that does."""
    direct = folder / name
    if Path(name).suffix.lower() in IMAGE_EXTENSIONS and direct.is_file():
        return direct
    stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name
    for ext in IMAGE_EXTENSIONS:
        for cand in (folder / (stem + ext), folder / (stem + ext.upper())):
            if cand.is_file():
                return cand
    return None


def _list_stems(folder: Path) -> list:
    files: Dict[str, list] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            files.setdefault(p.stem, []).append(p.name)
    duplicates = {stem: names for stem, names in files.items() if len(names) > 1}
    if duplicates:
        names = next(iter(duplicates.values()))
        raise InputError(f'{folder} holds {len(duplicates)} image name(s) with more than one '
                         f"file (first: {', '.join(names)}); keep one file per name")
    return list(files)


def _check_dir(path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise InputError(f'{what} folder not found: {p}')
    return p


def score_folders(
    fused_dir,
    ir_dir,
    vis_dir,
    names_list: Optional[Iterable[str]] = None,
    *,
    metrics: Sequence[str] = METRIC_NAMES,
    failures: Optional[Dict[str, str]] = None,
    max_pixels: Optional[int] = None,
    undefined: Optional[Dict[str, Dict[str, str]]] = None,
) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
    """
    Score every fused image of a folder against its infrared and visible sources.

    ``names_list`` lists the images to score (file names or stems, e.g. a split from
    ``split.json``); by default every image of ``fused_dir``.  Each image is looked up by
    stem in each folder with any of :data:`IMAGE_EXTENSIONS`.  Returns the per-image
    metrics keyed by stem and their mean. An image with more pixels than ``max_pixels``
    (None: the default ``limits.max_input_pixels``) is refused from its header, like any other
    unreadable image.

    With ``failures`` (a dict to fill) an image that cannot be read is recorded there instead of
    raising, and each image is scored by :func:`frame_metrics`: a metric undefined on it is
    ``None`` (left out of the mean) and its reason goes to ``undefined[stem][metric]``.
    """
    metrics = _check_names(metrics)
    fdir = _check_dir(fused_dir, 'fused')
    idir = _check_dir(ir_dir, 'infrared')
    vdir = _check_dir(vis_dir, 'visible')
    if names_list is None:
        stems = _list_stems(fdir)
        if not stems:
            raise InputError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}) in fused folder {fdir}")
    else:
        stems = []
        for n in names_list:
            n = str(n)
            stem = Path(n).stem if Path(n).suffix.lower() in IMAGE_EXTENSIONS else n
            if stem not in stems:
                stems.append(stem)
        if not stems:
            raise InputError('the list of images to score is empty')

    paths = []
    missing: Dict[str, list] = {}
    folders = (('fused', fdir), ('infrared', idir), ('visible', vdir))
    for stem in stems:
        trio = tuple(find_image(d, stem) for _, d in folders)
        for p, (what, d) in zip(trio, folders):
            if p is None:
                missing.setdefault(f'{what} folder {d}', []).append(stem)
        paths.append((stem, trio))
    if missing:
        parts = []
        for where, lacking in missing.items():
            shown = ', '.join(lacking[:3]) + (', ...' if len(lacking) > 3 else '')
            parts.append(f'{where} lacks {len(lacking)} of {len(stems)} images ({shown})')
        raise InputError('; '.join(parts))

    per_image: Dict[str, Dict[str, float]] = {}
    for stem, (pf, pa, pb) in paths:
        try:
            f, a, b = (read_gray(p, max_pixels) for p in (pf, pa, pb))
            if not (f.shape == a.shape == b.shape):
                raise InputError(
                    f'size mismatch for {stem}: fused {f.shape[1]}x{f.shape[0]}, infrared '
                    f'{a.shape[1]}x{a.shape[0]}, visible {b.shape[1]}x{b.shape[0]}'
                )
        except InputError as err:
            if failures is None:
                raise
            failures[stem] = str(err)
            continue
        if failures is None:
            per_image[stem] = fusion_metrics(f, a, b, metrics)
        else:
            per_image[stem], lacking = frame_metrics(f, a, b, metrics)
            if lacking and undefined is not None:
                undefined[stem] = lacking
    return per_image, mean_of(per_image, metrics)


def mean_of(per_image: Dict[str, Dict[str, float]], metrics: Sequence[str]) -> Dict[str, float]:
    """Mean of each metric over the images that have it (None where none has)."""
    out = {}
    for m in metrics:
        values = [v[m] for v in per_image.values() if v.get(m) is not None]
        out[m] = float(np.mean(values)) if values else None
    return out


# --------------------------------------------------------------------------- tables


def percentile_summary(values: Iterable[float], keys: Sequence[str] = ('p50', 'p90'),
                       digits: Optional[int] = None) -> dict:
    """
    Summarise ``values`` as ``{key: number}``, each rounded to ``digits`` when given.

    Keys: ``pNN`` (the NN-th percentile, linear interpolation), ``median``, ``mean``, ``max``
    and ``n`` (the count, never rounded).
    """
    a = np.asarray(values if isinstance(values, (list, tuple, np.ndarray)) else list(values),
                   np.float64)
    out = {}
    for key in keys:
        if key == 'n':
            out[key] = int(a.size)
            continue
        if key == 'median':
            value = np.median(a)
        elif key == 'mean':
            value = a.mean()
        elif key == 'max':
            value = a.max()
        else:
            value = np.percentile(a, float(key[1:]))
        value = float(value)
        out[key] = round(value, digits) if digits is not None else value
    return out


def _fmt(v) -> str:
    if v is None:
        return '-'
    v = float(v)
    if math.isnan(v):
        return 'nan'
    if math.isinf(v):
        return 'inf' if v > 0 else '-inf'
    return f'{v:.4f}'


def format_table(rows: Dict[str, Dict[str, float]],
                 metrics: Sequence[str] = HEADLINE_METRICS) -> str:
    """Markdown table, one row per method (``rows = {method: {metric: value}}``)."""
    metrics = tuple(metrics)
    header = '| Method | ' + ' | '.join(metrics) + ' |'
    rule = '|---|' + '|'.join('---:' for _ in metrics) + '|'
    lines = [header, rule]
    for label, vals in rows.items():
        cells = ' | '.join(_fmt(vals.get(m)) for m in metrics)
        lines.append('| ' + str(label) + ' | ' + cells + ' |')
    return '\n'.join(lines)
