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
``sgdfuse metrics``: score folders of fused images with the standard fusion metrics.

Example::

    sgdfuse metrics outputs/sgdfuse outputs/sage --data /data/roadscene --out results.json

prints one markdown table (a row per folder) on stdout and, with ``--out``, writes the
per-image values and the mean of every folder as JSON.

Several folders are compared like for like: every folder is scored on the images common to all
of them (the ones left out, and from which folder, are said on stderr and kept in the JSON). With a
split (``--data DIR`` brings its ``split.json``; ``--subset`` picks the list, default ``test``) the
listed images present in every folder and among the sources are scored, and how many of the list
that is is said (a partial run of 6 of 50 test images scores those 6); only a split of which no
image is present is refused. ``--time-of-day day|night`` (MSRS names) and ``--limit N`` narrow the
choice further, as in every command that reads pairs. An image that cannot be read in one folder
is left out of every folder's mean, with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys

from .options import add_pair_choice
from .outputs import check_apart
from .outputs import check_output_file
from .values import int_at_least
from .values import name_list
from ..errors import InputError
from ..eval.datasets import read_split, time_of_day
from ..eval.metrics import HEADLINE_METRICS, METRIC_NAMES
from ..eval.scoring import find_image, format_table, IMAGE_EXTENSIONS, mean_of, score_folders
from ..image_decode import DEFAULT_MAX_PIXELS
from ..writing import write_bytes, write_failure

DATA_ENV = 'SGDFUSE_DATA'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        'Score folders of fused images against their infrared and visible sources with the '
        'standard IVIF metrics (' + ', '.join(METRIC_NAMES) + '), as published tables '
        'compute them.'
    )
    parser.add_argument('fused_dirs', nargs='+', metavar='FUSED_DIR',
                        help='folder(s) of fused images, matched to the sources by file stem')
    parser.add_argument('--data', default=os.environ.get(DATA_ENV), metavar='DIR',
                        help='dataset folder holding ir/, vis/ and split.json: shorthand for '
                             '--ir DIR/ir --vis DIR/vis --split DIR/split.json '
                             f'(default: ${DATA_ENV} if set)')
    parser.add_argument('--ir', metavar='DIR', help='folder of infrared source images')
    parser.add_argument('--vis', metavar='DIR', help='folder of visible source images')
    add_pair_choice(parser)
    parser.add_argument('--names', metavar='M1,M2', type=name_list(METRIC_NAMES, 'metric'),
                        help='metrics to compute and show, comma separated (default: all are '
                             'computed, the table shows ' + ','.join(HEADLINE_METRICS) + ')')
    parser.add_argument('--labels', metavar='L1,L2',
                        help='row labels, one per FUSED_DIR (default: folder names)')
    parser.add_argument('--out', metavar='JSON', help='write per-image values and means here')
    parser.add_argument('--max-pixels', type=int_at_least(1), default=DEFAULT_MAX_PIXELS,
                        metavar='N', help='refuse images with more pixels than this, from '
                        'their headers before decoding (default %(default)s, the default '
                        'limits.max_input_pixels)')


def _split_list(text: str) -> list:
    return [t.strip() for t in text.split(',') if t.strip()]


def _resolve_sources(args):
    data = Path(args.data) if getattr(args, 'data', None) else None
    ir, vis, split = args.ir, args.vis, args.split
    if data is not None:
        if not data.is_dir():
            raise InputError(f'dataset folder not found: {data}')
        # The dataset's split only applies when its images are the sources.
        if split is None and ir is None and vis is None and (data / 'split.json').is_file():
            split = str(data / 'split.json')
        ir = ir or str(data / 'ir')
        vis = vis or str(data / 'vis')
    if ir is None or vis is None:
        raise InputError(f'give the sources with --ir DIR --vis DIR, or --data DIR '
                         f'(or set ${DATA_ENV})')
    return ir, vis, split


def _load_split(split, subset):
    if split is None:
        if subset is not None:
            raise InputError('--subset needs --split (or --data with a split.json)')
        return None, None
    subset = subset or 'test'
    return read_split(split, subset), subset


def _labels(dirs, labels_arg):
    if labels_arg is not None:
        labels = _split_list(labels_arg)
        if len(labels) != len(dirs):
            raise InputError(f'--labels gives {len(labels)} label(s) for {len(dirs)} folder(s)')
    else:
        labels = [Path(d).resolve().name or str(d) for d in dirs]
        if len(set(labels)) != len(labels):
            labels = ['/'.join(Path(d).resolve().parts[-2:]) for d in dirs]
    if len(set(labels)) != len(labels):
        raise InputError('row labels are not unique; give --labels')
    return labels


def common_images(labels, dirs):
    """Find the stems present in every folder, and per label the ones left out; refuse none."""
    stems = {}
    for label, folder in zip(labels, dirs):
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f'fused folder not found: {folder}')
        stems[label] = {p.stem for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}
    common = set.intersection(*stems.values())
    left_out = {label: sorted(s - common) for label, s in stems.items() if s - common}
    if not common:
        raise InputError('the folders have no image name in common: ' + ', '.join(
            f'{label} has {len(s)}' for label, s in stems.items()) + '; nothing to compare')
    if left_out:
        print(f'scoring the {len(common)} image(s) common to all folders; left out: ' + '; '.join(
            f"{len(names)} of {label} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            for label, names in left_out.items()), file=sys.stderr)
    return sorted(common), left_out


def present_images(names, labels, dirs, ir, vis, subset):
    """
    Keep the split's images found in every fused folder and both source folders.

    A partial run (6 of 50 test images fused) is scored on what it has, said on stderr and kept
    in the JSON (``left_out``); refused only when none of the list is present.
    """
    places = [(label, Path(d)) for label, d in zip(labels, dirs)] + \
        [('infrared sources', Path(ir)), ('visible sources', Path(vis))]
    for label, folder in places:
        if not folder.is_dir():
            raise InputError(f'{label} folder not found: {folder}')
    present, missing = [], {}
    for name in names:
        absent = [label for label, folder in places if find_image(folder, name) is None]
        if absent:
            for label in absent:
                missing.setdefault(label, []).append(name)
        else:
            present.append(name)
    if not present:
        raise InputError(f"none of the {len(names)} images of the '{subset}' list is in every "
                         'folder: ' + '; '.join(f'{label} lacks {len(lacking)}'
                                                for label, lacking in missing.items()))
    if missing:
        print(f"scoring {len(present)} of the {len(names)} images of the '{subset}' list "
              'present in every folder; missing: ' + '; '.join(
                  f"{len(lacking)} from {label} ({', '.join(lacking[:3])}"
                  f"{', ...' if len(lacking) > 3 else ''})" for label, lacking in missing.items()),
              file=sys.stderr)
    return present, {label: lacking for label, lacking in missing.items() if label in labels}


def narrowed(names, first_dir, when, limit):
    """Apply ``--time-of-day`` and ``--limit`` to the images to score (None: the folder's)."""
    if not when and not limit:
        return names
    if names is None:
        folder = Path(first_dir)
        names = sorted(p.stem for p in folder.iterdir()) if folder.is_dir() else []
        names = [n for n in names if find_image(folder, n) is not None]
    if when:
        chosen = [n for n in names if time_of_day(n) == when]
        if not chosen:
            raise InputError(f'--time-of-day {when}: none of the {len(names)} images is a {when} '
                             'frame (MSRS names end in D for day, N for night)')
        names = chosen
    return names[:limit] if limit else names


def main(args) -> int:
    ir, vis, split = _resolve_sources(args)
    image_names, subset = _load_split(split, getattr(args, 'subset', None))
    if getattr(args, 'names', None):
        metrics = list(args.names)
        shown = metrics
    else:
        metrics = list(METRIC_NAMES)
        shown = list(HEADLINE_METRICS)
    labels = _labels(args.fused_dirs, getattr(args, 'labels', None))
    if getattr(args, 'out', None):
        check_output_file(args.out, '--out')  # before any image is scored
        check_apart([(f'FUSED_DIR {label}', fdir) for label, fdir in zip(labels, args.fused_dirs)]
                    + [('--ir', ir), ('--vis', vis), ('--split', split)], [('--out', args.out)])
    left_out, listed = {}, None
    if image_names is None and len(args.fused_dirs) > 1:
        image_names, left_out = common_images(labels, args.fused_dirs)
    elif image_names is not None:
        listed = len(image_names)
        image_names, left_out = present_images(image_names, labels, args.fused_dirs, ir, vis,
                                               subset)
    image_names = narrowed(image_names, args.fused_dirs[0], getattr(args, 'when', None),
                           getattr(args, 'limit', 0))

    rows, results, failures, undefined = {}, {}, {}, {}
    scored = {}
    for label, fdir in zip(labels, args.fused_dirs):
        failed: dict = {}
        scored[label] = score_folders(fdir, ir, vis, image_names, metrics=metrics,
                                      failures=failed, max_pixels=args.max_pixels,
                                      undefined=undefined.setdefault(label, {}))[0]
        failures.update({f'{label}/{stem}': reason for stem, reason in failed.items()})
    usable = set.intersection(*(set(per) for per in scored.values()))
    for label, fdir in zip(labels, args.fused_dirs):
        per_image = {stem: v for stem, v in scored[label].items() if stem in usable}
        mean = mean_of(per_image, metrics)
        rows[label] = mean
        lacking = {stem: why for stem, why in undefined[label].items() if stem in usable}
        results[label] = {'dir': str(fdir), 'count': len(per_image), 'mean': mean,
                          'per_image': per_image, 'left_out': left_out.get(label, []),
                          'metrics_missing': lacking}
    if failures:
        first = next(iter(failures.items()))
        print(f'{len(failures)} image(s) could not be scored and are left out of every '
              f'folder (first: {first[0]}: {first[1]})', file=sys.stderr)
    if not usable:
        raise InputError('no image could be scored in every folder')
    undefined_counts = {}
    for lacking in undefined.values():
        for stem, why in lacking.items():
            for metric in why:
                if stem in usable:
                    undefined_counts.setdefault(metric, set()).add(stem)
    if undefined_counts:
        first = next((why for lacking in undefined.values() for s_, why in lacking.items()
                      if s_ in usable), {})
        print('undefined on some images, left out of those means: ' + ', '.join(
            f'{m} on {len(stems)}' for m, stems in undefined_counts.items())
            + (f' (first: {next(iter(first.values()))})' if first else ''), file=sys.stderr)

    print(format_table(rows, shown))
    n = len(next(iter(results.values()))['per_image'])
    where = f' ({Path(split).name}: {subset})' if split else ''
    of = f' of the {listed} listed' if listed is not None else ''
    print(f'{n} image(s) per folder{of}{where}', file=sys.stderr)

    if getattr(args, 'out', None):
        out = Path(args.out)
        doc = {
            'ir': str(ir),
            'vis': str(vis),
            'split': str(split) if split else None,
            'subset': subset,
            'listed': listed,
            'time_of_day': getattr(args, 'when', None),
            'limit': getattr(args, 'limit', 0) or None,
            'metrics': metrics,
            'failures': failures,
            'results': results,
        }
        try:  # a temporary file beside it, then a rename: a previous file is kept on a failure
            if out.parent and not out.parent.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(out, (json.dumps(doc, indent=1) + '\n').encode('utf-8'))
        except OSError as err:
            raise InputError(write_failure(err, out)
                             + ('; the previous file is as it was' if out.exists() else '')
                             ) from None
    return 0


if __name__ == '__main__':  # pragma: no cover - convenience entry point
    from . import main as sgdfuse  # `sgdfuse metrics`, run as this module
    sys.exit(sgdfuse(['metrics'] + sys.argv[1:]))
