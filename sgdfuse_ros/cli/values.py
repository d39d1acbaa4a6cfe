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
Every option value of every ``sgdfuse`` command is checked here, once, at parse time.

Each function is an argparse ``type=``: it turns the text into the value or raises
``argparse.ArgumentTypeError``, which the parser prints as one line
(``sgdfuse COMMAND: error: argument --seed: must be in [0, 4294967295], got -1``) with exit
status 2, before any file is opened. One function per kind of value, used by every command that
takes it: seeds, thread counts, learning rates, loss weights, ``--set NAME=VALUE`` overrides
(parsed by the one YAML reader of :mod:`sgdfuse_ros.config`), topic names, metric names.
"""

from __future__ import annotations

import argparse
import json
import math
import re

from ..config import check_arch, parse_override
from ..errors import ConfigError

#: ``--seed``: what numpy and torch both take, the same range in every command
SEED_MAX = 2 ** 32 - 1
#: ``--threads``: as the ``threads`` parameter (0 = the library's default)
THREADS_MAX = 256
#: ``--lr``: AdamW's peak learning rate; above 1 every step overshoots (the loss turns NaN)
LR_MAX = 1.0
#: ``--loss-weights``: the largest weight of one term (the shipped ones are <= 100)
LOSS_WEIGHT_MAX = 1e6
#: loss-weight keys that are not terms of :data:`training.losses.DEFAULT_WEIGHTS`
EXTRA_LOSS_KEYS = ('target_weight', 'contrast_ratio', 'denoise')
#: ``make-bag --start``: a ROS 2 stamp's seconds are an int32
STAMP_MAX_S = 2 ** 31 - 1


def _number(x: float) -> str:
    """``2147483647`` rather than ``2.14748e+09``; ``inf`` and fractions as ``%g``."""
    return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e16 else f'{x:g}'


def _fail(message: str):
    raise argparse.ArgumentTypeError(message)


def int_at_least(minimum: int):
    """Argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if value < minimum:
            _fail(f'must be >= {minimum}, got {value}')
        return value
    parse.__name__ = f'integer >= {minimum}'
    return parse


def int_in(low: int, high: int):
    """Argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if not low <= value <= high:
            _fail(f'must be in [{low}, {high}], got {value}')
        return value
    parse.__name__ = f'integer in [{low}, {high}]'
    return parse


def float_range(low: float = -math.inf, high: float = math.inf, low_open: bool = False):
    """Argparse type: a finite number in [low, high] (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
        if not math.isfinite(value) or value > high or value < low or (
                low_open and value == low):
            bound = f"{'(' if low_open else '['}{_number(low)}, {_number(high)}]"
            _fail(f'must be a finite number in {bound}, got {text}')
        return value
    parse.__name__ = 'number'
    return parse


#: ``--seed``: an integer in [0, 2^32 - 1]
seed = int_in(0, SEED_MAX)
#: ``--threads``: 0 (the library's default) .. 256
threads = int_in(0, THREADS_MAX)
#: ``--lr``: a finite learning rate in (0, 1]
learning_rate = float_range(0.0, LR_MAX, low_open=True)
#: ``--minutes``: a finite positive duration
minutes = float_range(0.0, low_open=True)


def crop_size(text: str) -> int:
    """Argparse type: a crop size >= 32 and a multiple of 8."""
    value = int_in(32, 4096)(text)
    if value % 8:
        _fail(f'must be a multiple of 8, got {value}')
    return value


def known_loss_keys() -> list:
    """Every key ``--loss-weights`` accepts, for either stage (the refiner's are the same)."""
    from ..training.losses import DEFAULT_WEIGHTS  # torch: only when the option is given
    return [*DEFAULT_WEIGHTS, *EXTRA_LOSS_KEYS]


def _json_object(text: str, what: str) -> dict:
    """Parse ``text`` as one JSON object, or refuse it in one line (``what``: the shape wanted)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise argparse.ArgumentTypeError(f'not valid JSON ({str(err)[:120]})') from None
    if not isinstance(value, dict):
        _fail(f'expected a JSON object {what}')
    return value


def loss_weights(text: str) -> dict:
    """Argparse type: a JSON object of known loss-weight keys and finite numbers in [0, 1e6]."""
    value = _json_object(text, '{"key": weight, ...}, e.g. \'{"visible_lead": 0}\'')
    known = known_loss_keys()
    unknown = [k for k in value if k not in known]
    if unknown:
        _fail(f"unknown key(s) {', '.join(unknown)[:200]} (known: {', '.join(known)})")
    bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))
           or not math.isfinite(v) or not 0 <= v <= LOSS_WEIGHT_MAX]
    if bad:
        _fail(f'weights must be finite numbers >= 0 and <= {LOSS_WEIGHT_MAX:g}: '
              + ', '.join(f'{k}={value[k]!r}' for k in bad)[:200])
    return value


def arch_json(text: str) -> dict:
    """Argparse type of ``train --arch``: a JSON object whose sizes are within ``ARCH_LIMITS``."""
    value = _json_object(text, 'of architecture sizes, e.g. \'{"c1": 16}\'')
    try:
        return check_arch(value, '--arch', '')
    except ConfigError as err:  # '--arch weights : architecture size ...': keep the reason
        raise argparse.ArgumentTypeError(str(err).split(': ', 1)[-1]) from None


def override(text: str) -> tuple:
    """Argparse type of ``--set NAME=VALUE``: ``(name, value)``, the value checked."""
    try:
        return parse_override(text)
    except ConfigError as err:
        message = str(err)
        for prefix in ('--set: ', '--set '):  # argparse names the option already
            message = message[len(prefix):] if message.startswith(prefix) else message
        raise argparse.ArgumentTypeError(message) from None


_TOPIC = re.compile(r'~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*')


def topic_name(text: str) -> str:
    """Argparse type: a ROS 2 topic name that DDS accepts (rcl's rules, no substitutions)."""
    if not _TOPIC.fullmatch(text) or '__' in text:
        _fail(f"{text[:80]!r} is not a valid ROS 2 topic name (letters, digits and '_', "
              f"separated by '/'; no token starting with a digit, no '//', no trailing '/', "
              f"no '__')")
    return text


def remap_rule(text: str) -> str:
    """Argparse type of ``--remap FROM:=TO``: two valid topic names (ROS syntax)."""
    if ':=' not in text:
        _fail(f'{text[:80]!r} is not of the form FROM:=TO')
    source, target = (part.strip() for part in text.split(':=', 1))
    for side in (source, target):
        topic_name(side)
    return f'{source}:={target}'


def namespace(text: str) -> str:
    """Check a ROS 2 namespace: '/', '/robot', 'robot/front' (argparse type, kept as given)."""
    ns = text.strip().strip('/')
    if ns and (not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*', ns)
               or '__' in ns):
        _fail(f"{text[:80]!r} is not a valid ROS 2 namespace (letters, digits and '_', "
              f"separated by '/'; no token starting with a digit, no '__')")
    return text


def node_name(text: str) -> str:
    """Argparse type: a ROS 2 node name (letters, digits and '_', not starting with a digit)."""
    if not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]{0,254}', text):
        _fail(f"{text[:80]!r} is not a valid ROS 2 node name (letters, digits and '_', not "
              f'starting with a digit)')
    return text


def name_list(known, what: str):
    """Argparse type: a comma-separated, non-empty list of ``known`` names, each once."""
    known = tuple(known)

    def parse(text: str) -> list:
        names = [t.strip() for t in text.split(',')]
        if not any(names):
            _fail(f'names no {what} (known: {", ".join(known)})')
        if '' in names:
            _fail(f'an empty name in {text!r} (a stray comma?)')
        unknown = [n for n in names if n not in known]
        if unknown:
            _fail(f"unknown {what}(s) {', '.join(unknown)[:200]} (known: {', '.join(known)})")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            _fail(f"{', '.join(twice)} listed twice")
        return names
    parse.__name__ = f'{what} names'
    return parse
