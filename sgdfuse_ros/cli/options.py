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
Argparse options that several ``sgdfuse`` commands share, written once.

The bag commands (``replay``, ``adapt``) take an input bag, the two camera topics and a config
with overrides; the commands that read image pairs (``evaluate``, ``make-bag``, ``metrics``,
``register``) choose them with the same options (:func:`add_pair_choice`, read by
:func:`sgdfuse_ros.eval.datasets.choose_pairs`). Each command adds them with these helpers where
they stand in its ``--help``.
"""

from __future__ import annotations

from .values import int_at_least, override, topic_name


def add_input_bag(parser, dest: str = 'bag', metavar: str = 'BAG') -> None:
    """Add the input bag, a positional argument."""
    parser.add_argument(dest, metavar=metavar,
                        help='input bag: rosbag2 directory (sqlite3 or mcap), .mcap or .db3 file')


def add_camera_topics(parser) -> None:
    """Add ``--thermal-topic`` and ``--rgb-topic``: the bag's camera topics (default: found)."""
    parser.add_argument('--thermal-topic', metavar='T', type=topic_name,
                        help='thermal Image/CompressedImage topic '
                        '(default: found from types, encodings and names)')
    parser.add_argument('--rgb-topic', metavar='R', type=topic_name, dest='visible_topic',
                        help='RGB Image/CompressedImage topic')


def add_config(parser, what: str = '') -> None:
    """Add ``--config FILE`` and ``--set NAME=VALUE`` (repeatable, into ``args.overrides``)."""
    parser.add_argument('--config', metavar='FILE', help="config file (default: the package's "
                        f'config/fusion.yaml){what}')
    parser.add_argument('--set', dest='overrides', action='append', default=[], type=override,
                        metavar='NAME=VALUE', help='override one parameter (repeatable)')


def add_pair_choice(group, split: bool = True) -> None:
    """Add ``--split``, ``--subset``, ``--time-of-day`` and ``--limit``: which pairs are read."""
    if split:
        group.add_argument('--split', metavar='FILE', default=None,
                           help='split file {"subset": [image names]} (default: DATA/split.json '
                           'with --subset)')
        group.add_argument('--subset', metavar='NAME', default=None,
                           help='only the pairs this list of the split file names (e.g. test; '
                           'default test when --split is given)')
    group.add_argument('--time-of-day', choices=('day', 'night'), default=None, dest='when',
                       help='only day or night frames (MSRS names: 00001D day, 00003N night)')
    group.add_argument('--limit', type=int_at_least(0), default=0, metavar='N',
                       help='only the first N pairs chosen (0 = all)')


def pair_choice(args) -> dict:
    """Return the keyword arguments of :func:`~sgdfuse_ros.eval.datasets.choose_pairs`."""
    return {'split': getattr(args, 'split', None), 'subset': getattr(args, 'subset', None),
            'when': getattr(args, 'when', None), 'limit': getattr(args, 'limit', 0)}
