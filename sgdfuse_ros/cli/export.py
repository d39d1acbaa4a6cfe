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
``sgdfuse export``: write the networks as ONNX files for ``backend: onnx``.

    sgdfuse export --out models/onnx [--what first-stage,refiner,sam-decoder] [--config FILE]

Each part is exported by the module that owns its network, through a function
``(config, out_dir) -> path (or list of paths)`` (``export_onnx`` unless named after a colon):

- ``first-stage``: ``sgdfuse_ros.onnx.fusion_networks:export_first_stage_onnx``, needs
  ``first_stage.weights``;
- ``refiner``: ``sgdfuse_ros.onnx.fusion_networks:export_refiner_onnx``, needs
  ``refiner.weights``;
- ``sam-decoder``: ``sgdfuse_ros.onnx.sam_decoder``, needs ``prior.sam.checkpoint``.

(generic helpers for those functions: :func:`sgdfuse_ros.onnx.export.export_module`). Every part
that cannot be exported (module not in this build, no ``export_onnx``, weights missing) is named
with its reason; the command then exits non-zero with one line listing them.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
import sys
from typing import List, Tuple

from .guard import Interrupted, StopNow
from .outputs import check_apart, config_inputs
from .outputs import check_output_dir
from .values import name_list, override
from ..config import load_config
from ..errors import ConfigError, error_line, SgdfuseError

log = logging.getLogger('sgdfuse_ros')

PARTS = {
    'first-stage': 'sgdfuse_ros.onnx.fusion_networks:export_first_stage_onnx',
    'refiner': 'sgdfuse_ros.onnx.fusion_networks:export_refiner_onnx',
    'sam-decoder': 'sgdfuse_ros.onnx.sam_decoder',
}


def add_arguments(parser) -> None:
    parser.add_argument('--out', required=True, help='folder for the .onnx files')
    parser.add_argument('--what', default=None, type=name_list(PARTS, 'part'),
                        help=f"comma-separated parts to export, of {','.join(PARTS)} (default: "
                             'all; sam-decoder only when prior.sam.checkpoint is set)')
    parser.add_argument('--config', default=None, help='config file (default: config/fusion.yaml)')
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE', type=override,
                        help='override a parameter (repeatable), e.g. --set '
                             'first_stage.weights=runs/a/first_stage.pt')


def find_exporter(part: str):
    """(export function, None) or (None, why it is not available)."""
    module_name, _, function = PARTS[part].partition(':')
    function = function or 'export_onnx'
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name or (err.name and module_name.startswith(err.name + '.')):
            return None, f'{module_name} is not in this build'
        return None, f"{module_name} needs the missing package '{err.name}'"
    except Exception as err:  # a module that fails to import must not hide the other parts
        return None, f'{module_name} fails to import ({type(err).__name__}: {err})'
    exporter = getattr(module, function, None)
    if not callable(exporter):
        return None, f'{module_name} has no {function}(config, out_dir)'
    return exporter, None


def export_part(part: str, config: dict, out_dir: Path) -> Tuple[List[Path], str]:
    """(written files, '') or ([], reason)."""
    exporter, why = find_exporter(part)
    if exporter is None:
        return [], why
    try:
        written = exporter(config, out_dir)
    except SgdfuseError as err:  # weights missing or mismatched: the owner's one-line message
        return [], str(err)
    except Exception as err:  # the exporter itself broke: say so in one line (-v logs it all)
        log.debug('export of %s failed', part, exc_info=True)
        return [], f'export failed: {error_line(err, 200)}'
    paths = [Path(p) for p in (written if isinstance(written, (list, tuple)) else [written])]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        return [], f"export_onnx wrote no file{(' ' + ', '.join(missing)) if missing else ''}"
    return paths, ''


def main(args) -> int:
    check_output_dir(args.out, '--out')  # before any network is built
    overrides = dict(args.set)
    config = load_config(args.config, overrides)
    check_apart(config_inputs(args.config, config), [('--out', args.out)])
    parts = list(args.what or PARTS)  # checked at parse time (values.name_list)
    if args.what is None and not config['prior.sam.checkpoint']:
        parts.remove('sam-decoder')
        print('sam-decoder: skipped (prior.sam.checkpoint is not set)', file=sys.stderr)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, done = [], []
    for part in parts:
        try:
            paths, why = export_part(part, config, out_dir)
        except StopNow as err:  # a signal: the part in progress leaves no file
            kept = f"; complete: {', '.join(done)}" if done else ''
            raise Interrupted(err.signum, f'interrupted by {err} while exporting {part} (no '
                              f'file of it left){kept}') from None
        if paths:
            done.append(part)
            for path in paths:
                print(f'{part}: {path} ({path.stat().st_size / 1e6:.1f} MB)')
        else:
            failed.append(f'{part} ({why})')
    if failed:
        raise ConfigError('not exported: ' + '; '.join(failed))
    return 0
