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

Every YAML the package reads from a user (config files, ``--set`` values, a bag's
``metadata.yaml``) goes through :func:`load_yaml`: the safe loader (no tags that build Python
objects), no aliases (``*name``; ROS 2's own parameter parser refuses them too, and they are how
a 1 kB file expands into gigabytes), at most :data:`MAX_YAML_DEPTH` levels of nesting and
:data:`MAX_CONFIG_BYTES` bytes. Anything else is one :class:`ConfigError` line.
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
import sys
from typing import Any, Mapping, Optional

import yaml

from .errors import ConfigError, first_line
from .parameters import defaults, SPECS

PACKAGE_ROOT = Path(__file__).resolve().parent

#: largest config file read (the shipped one is about 9 kB); a bigger file is refused unread
MAX_CONFIG_BYTES = 256 * 1024
#: deepest nesting of mappings and lists in a YAML document (parameters nest 4 levels)
MAX_YAML_DEPTH = 32


def share_dir() -> Path:
    """Directory holding config/ and models/: the source tree, or the installed share dir."""
    source_tree = PACKAGE_ROOT.parent
    if (source_tree / 'config' / 'fusion.yaml').is_file():
        return source_tree
    try:  # installed by colcon / ament
        # ROS 2 only (an install by colcon); pip installs run from the source tree
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('sgdfuse_ros'))
    except Exception:  # pragma: no cover - only without the source tree and without ROS
        pass
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


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, 'an alias (*name) is not supported (ROS 2 parameter files refuse '
                'them too); write the value out', mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f'nested deeper than {MAX_YAML_DEPTH} levels',
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: the problem and where."""
    if isinstance(err, yaml.MarkedYAMLError):
        problem = ' '.join(str(err.problem or err.context or 'parse error').split())[:200]
        mark = err.problem_mark or err.context_mark
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        return problem + where
    return first_line(err, 200, 'parse error')


def load_yaml(text: str, origin: str, max_chars: int = MAX_CONFIG_BYTES) -> Any:
    """
    Parse YAML ``text`` (from ``origin``) with the bounded safe loader; ConfigError if bad.

    ``max_chars`` bounds the text (a bag's ``metadata.yaml`` lists every storage file and may
    be larger than a config); without aliases the parsed document grows only with it.
    """
    if len(text) > max_chars:
        raise ConfigError(f'{origin}: {len(text)} characters of YAML, more than the '
                          f'{max_chars // 1024} kB it may hold')
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f'{origin}: not valid YAML ({_yaml_problem(err)})') from None
    except RecursionError:  # pragma: no cover - the depth bound comes first
        raise ConfigError(f'{origin}: not valid YAML (nested too deep)') from None
    finally:
        loader.dispose()


def _ros_parameters(document: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping with 'ros__parameters'")
    section = None
    if 'ros__parameters' in document:
        section = document['ros__parameters']
    else:
        for value in document.values():
            if isinstance(value, Mapping) and 'ros__parameters' in value:
                section = value['ros__parameters']
                break
        else:
            raise ConfigError(f"{path}: no 'ros__parameters' section (ROS 2 parameter file "
                              f'layout)')
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: 'ros__parameters' must be a mapping of parameter names to "
                          f'values, got {_kind(section)}')
    return section


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, str):
        return f'the string {value[:40]!r}'
    return f'{type(value).__name__} {str(value)[:40]}'


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
        with path.open('rb') as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f'cannot read config file {path}: {err.strerror or err}') from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f'{path} is larger than the {MAX_CONFIG_BYTES // 1024} kB a config '
                          f'file may hold; not read')
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
        if path.is_dir():
            raise ConfigError(f'config file {path} is a folder; a YAML file is needed')
        if path.exists():
            raise ConfigError(f'config file {path} is not a regular file (a device or a pipe)')
        raise ConfigError(f'config file not found: {path}')
    document = load_yaml(read_text_file(path), str(path))
    try:
        config.update(validate(flatten(_ros_parameters(document, path)), str(path)))
    except ConfigError as err:  # name the file the value came from
        text = str(err)
        raise ConfigError(text if text.startswith(str(path)) else f'{path}: {text}') from None
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
    """
    Return ``(name, value)`` of 'name=value' from the command line, checked.

    The value is parsed as YAML (so 2, 2.5, true, [..] work) by :func:`load_yaml`, and checked
    against the parameter table as a config file's value is; ConfigError otherwise.
    """
    if '=' not in text:
        raise ConfigError(f'--set expects name=value, got {text[:80]!r}')
    name, raw = text.split('=', 1)
    name = name.strip()
    value = load_yaml(raw, f'--set {name}')
    return name, validate({name: value}, '--set').get(name, value)


def resolve_model_path(value: str, default_name: str) -> Path:
    """Return an explicit weights path, or the shipped file under models/."""
    return Path(value).expanduser() if value else models_dir() / default_name


#: the shipped first-stage weights under models/, by ``first_stage.tuned_for``
FIRST_STAGE_FILES = {'images': 'first_stage.pt', 'detectors': 'first_stage_detectors.pt'}


def first_stage_path(config: dict) -> Path:
    """Return the first-stage weights file: ``first_stage.weights``, else the shipped one."""
    return resolve_model_path(config['first_stage.weights'],
                              FIRST_STAGE_FILES[config['first_stage.tuned_for']])


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


#: Largest accepted value of each architecture size (channels, levels, blocks, steps); any
#: other integer of an ``arch`` is held to ``ARCH_DEFAULT_LIMIT``. The shipped weights use
#: channels <= 32, 4 levels, 2 blocks, T = 1000.
ARCH_LIMITS = {'c1': 1024, 'c2': 1024, 'levels': 10, 'blocks': 32, 'temb': 1024,
               'T': 100000, 't_start': 100000}
ARCH_DEFAULT_LIMIT = 100000


def check_arch(arch, kind: str, path) -> dict:
    """Refuse (one line) an architecture whose sizes are not sane, before anything is built."""
    if not isinstance(arch, dict):
        raise ConfigError(f'{kind} weights {path}: arch is {type(arch).__name__}, expected a dict')
    for key, value in arch.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        limit = ARCH_LIMITS.get(key, ARCH_DEFAULT_LIMIT)
        if not math.isfinite(value) or value < 0 or value > limit:
            raise ConfigError(f'{kind} weights {path}: architecture size {key}={value} is '
                              f'outside 0..{limit}; refusing to build it')
    return arch


def tensor_problem(tensor) -> Optional[str]:
    """
    Return why ``tensor`` cannot be weights (None if it can).

    Weights are dense CPU tensors of real numbers with their values in the file: a meta tensor
    (a shape without data, saved from a model built on the ``meta`` device), a sparse,
    quantized or complex tensor would fail or silently lose values when loaded into a network.
    """
    torch = sys.modules.get('torch')  # no tensor exists before torch is loaded
    if torch is None or not isinstance(tensor, torch.Tensor):
        return f'is a {type(tensor).__name__}, not a tensor'
    if tensor.is_meta or tensor.device.type == 'meta':
        return ('is a meta tensor (a shape without values: saved from a model built on the '
                "'meta' device)")
    if tensor.layout != torch.strided:
        return f'is a {tensor.layout} tensor, not a dense one'
    if tensor.device.type != 'cpu':
        return f'is on {tensor.device}, not loaded to the CPU'
    if tensor.is_quantized or tensor.is_complex() or str(tensor.dtype) not in _REAL_DTYPES:
        return f'has dtype {tensor.dtype}, not a real number type'
    return None


_REAL_DTYPES = tuple('torch.' + t for t in (
    'float16', 'bfloat16', 'float32', 'float64', 'uint8', 'int8', 'int16', 'int32', 'int64',
    'bool'))
