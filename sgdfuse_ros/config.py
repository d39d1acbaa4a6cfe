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
Read and validate the one configuration file that the node, the pipeline and the CLI share.

The file has the ROS 2 parameter layout (``<node name or /**>: ros__parameters: {...}``), so it
can be passed to ``ros2 run ... --ros-args --params-file`` unchanged. Nested dictionaries are
flattened to dotted names (``output: {width: 640}`` -> ``output.width``), as ROS does.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from .errors import ConfigError, first_line
from .parameters import defaults, SPECS

PACKAGE_ROOT = Path(__file__).resolve().parent


def share_dir() -> Path:
    """Directory holding config/ and models/: the source tree, or the installed share dir."""
    source_tree = PACKAGE_ROOT.parent
    if (source_tree / 'config' / 'fusion.yaml').is_file():
        return source_tree
    try:  # installed by colcon / ament
        from ament_index_python.packages import get_package_share_directory  # noqa: WPS433
        return Path(get_package_share_directory('sgdfuse_ros'))
    except Exception:  # pragma: no cover - only without the source tree and without ROS
        pass
    import sys
    candidate = Path(sys.prefix) / 'share' / 'sgdfuse_ros'
    return candidate if candidate.is_dir() else source_tree


def default_config_path() -> Path:
    return share_dir() / 'config' / 'fusion.yaml'


def models_dir() -> Path:
    return share_dir() / 'models'


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def _ros_parameters(document: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping with 'ros__parameters'")
    if 'ros__parameters' in document:
        return document['ros__parameters'] or {}
    for value in document.values():
        if isinstance(value, Mapping) and 'ros__parameters' in value:
            return value['ros__parameters'] or {}
    raise ConfigError(f"{path}: no 'ros__parameters' section (ROS 2 parameter file layout)")


def validate(values: Mapping[str, Any], origin: str = 'config') -> dict:
    """Validate a flat {name: value} mapping against the parameter table."""
    checked = {}
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            if name in ('use_sim_time',):  # ROS's own parameters may sit in the same file
                continue
            hint = difflib.get_close_matches(name, SPECS, n=1)
            more = f' (did you mean {hint[0]}?)' if hint else ''
            raise ConfigError(f"{origin}: unknown parameter '{name}'{more}")
        checked[name] = spec.validate(value)
    homography = checked.get('registration.homography')
    if homography is not None and len(homography) not in (0, 9):
        raise ConfigError(f'{origin}: registration.homography needs 9 numbers or none, '
                          f'got {len(homography)}')
    if homography is not None and len(homography) == 9 and singular_homography(homography):
        raise ConfigError(f'{origin}: registration.homography {homography} is singular (it '
                          'does not map the thermal image onto a plane)')
    return checked


def singular_homography(h) -> bool:
    """Whether 9 numbers (a row-major 3x3 homography) do not map a plane onto a plane."""
    h = [float(v) for v in h]
    det = (h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6])
           + h[2] * (h[3] * h[7] - h[4] * h[6]))
    return abs(det) < 1e-12


def read_text_file(path: Path) -> str:
    """Read a config file as text; a binary or non-UTF-8 file is a one-line ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f'cannot read config file {path}: {err.strerror or err}') from None
    nul = data.find(b'\x00')
    if nul >= 0:
        raise ConfigError(f'{path} is a binary file, not a YAML config file (a NUL byte at '
                          f'offset {nul})')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise ConfigError(f'{path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset '
                          f'{err.start}); save it as UTF-8') from None


def load_config(path: Optional[os.PathLike] = None,
                overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Defaults, then the YAML file (default: the package's config/fusion.yaml), then overrides."""
    config = defaults()
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ConfigError(f'config file not found: {path}')
    try:
        document = yaml.safe_load(read_text_file(path))
    except yaml.YAMLError as err:
        raise ConfigError(f'{path}: not valid YAML ({first_line(err, default="parse error")})') \
            from None
    config.update(validate(flatten(_ros_parameters(document, path)), str(path)))
    if overrides:
        config.update(validate(dict(overrides), 'override'))
    _check_cross(config)
    return config


def check_config(config: Mapping[str, Any]) -> dict:
    """Validate a complete flat configuration (types, ranges, cross-checks)."""
    missing = sorted(set(SPECS) - set(config))
    if missing:
        raise ConfigError(f"configuration lacks {', '.join(missing)}")
    checked = validate({k: v for k, v in config.items() if k in SPECS}, 'parameters')
    _check_cross(checked)
    return checked


def _check_cross(config: Mapping[str, Any]) -> None:
    """Check what involves two parameters (AGC window, output size against the pixel limit)."""
    lo, hi = config['agc.low_percentile'], config['agc.high_percentile']
    if lo >= hi:
        raise ConfigError(f'agc.low_percentile ({lo}) must be below agc.high_percentile ({hi})')
    w, h, most = config['output.width'], config['output.height'], config['limits.max_input_pixels']
    if w and h and w * h > most:
        raise ConfigError(f'output.width x output.height = {w}x{h} = {w * h} pixels, more than '
                          f'limits.max_input_pixels={most} (the fused image is bounded like the '
                          'inputs: its memory grows with its pixels)')


def parse_override(text: str) -> tuple:
    """'name=value' from the command line, value parsed as YAML (so 2, 2.5, true, [..] work)."""
    if '=' not in text:
        raise ConfigError(f'--set expects name=value, got {text!r}')
    name, raw = text.split('=', 1)
    return name.strip(), yaml.safe_load(raw)


def resolve_model_path(value: str, default_name: str) -> Path:
    """Return an explicit weights path, or the shipped file under models/."""
    return Path(value).expanduser() if value else models_dir() / default_name


def check_model_file(path: os.PathLike, parameter: str, expected: str) -> Path:
    """
    ``path`` (from ``parameter``) is an existing, regular, readable file; else ConfigError.

    Checked before a loader opens it: a directory, a device (``/dev/zero``), a FIFO or an
    unreadable file each get their own one-line reason instead of a loader's stack of errors
    (or a read that never ends).
    """
    path = Path(path)
    where = f'{parameter}: {path}'
    if not path.exists():
        raise ConfigError(f'{where} not found (expected {expected})')
    if path.is_dir():
        raise ConfigError(f'{where} is a directory (expected {expected}, a file)')
    if not path.is_file():
        raise ConfigError(f'{where} is not a regular file (expected {expected})')
    if not os.access(path, os.R_OK):
        raise ConfigError(f'{where} is not readable by this process (permissions; expected '
                          f'{expected})')
    return path
