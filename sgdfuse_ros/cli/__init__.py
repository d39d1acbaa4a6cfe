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
``sgdfuse``: the command-line tool.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``main(args) -> int``; this file only dispatches: it imports the chosen command's module and no
other (``sgdfuse --help`` imports none), the one import of the package made at run time.

What stops a command ends as every console entry point of the package ends
(:func:`sgdfuse_ros.exits.exit_status`): a user error (:class:`SgdfuseError`) or a failed write
(a full disk, a read-only place) is one line and exit status 2; a command stopped by SIGINT /
SIGTERM / SIGHUP after saving its work (:class:`guard.Interrupted`, or a signal before it began
its work: :class:`guard.StopNow`) prints one line and exits 130 / 143 / 129
(:class:`guard.StopRequest`, installed here around every command). Nothing else is swallowed.
A missing dependency (a plain ``pip install .`` leaves OpenCV out, see setup.py) stops every
command, ``--help`` included, with one line saying what to install (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import Optional, Sequence

from .guard import installed, StopNow
from ..errors import first_line
from ..exits import exit_status

COMMANDS = {
    'evaluate': ('sgdfuse_ros.cli.evaluate', 'fuse a folder of registered pairs; metrics, report, '
                 'contact sheet'),
    'metrics': ('sgdfuse_ros.cli.metrics', 'score folders of fused images against the sources'),
    'demo': ('sgdfuse_ros.cli.demo',
             'the main job on an embedded sample (or RoadScene with --data)'),
    'train': ('sgdfuse_ros.cli.train', 'train the first stage or the diffusion refiner'),
    'adapt': ('sgdfuse_ros.cli.adapt', 'fine-tune the learned stages on your own bag (no labels)'),
    'make-bag': ('sgdfuse_ros.cli.make_bag', 'write a ROS 2 bag from registered image pairs'),
    'replay': ('sgdfuse_ros.cli.replay', 'fuse a ROS 2 bag into an output bag and a report'),
    'corpus': ('sgdfuse_ros.cli.corpus', 'replay many bags (local workers or Ray) into one '
               'report, resumable, with a baseline comparison'),
    'register': ('sgdfuse_ros.cli.register', 'find the thermal -> visible homography of a rig '
                 'from its frames (bag or folders)'),
    'export': ('sgdfuse_ros.cli.export', 'export the networks to ONNX'),
    'live': ('sgdfuse_ros.cli.live', 'run the fusion node without ROS 2, over Cyclone DDS'),
}


# What the commands import, each with what to install when it is missing (setup.py's
# install_requires and its opencv extra; ROS 2 users: requirements-ros.txt and rosdep)
DEPENDENCIES = (
    ('numpy', 'numpy', "pip install 'numpy>=1.21,<3'"),
    ('cv2', 'OpenCV', "pip install 'opencv-python-headless>=4.5,<6' (this package's [opencv] "
                      'extra); on ROS 2: sudo apt install python3-opencv'),
    ('yaml', 'PyYAML', "pip install 'PyYAML>=5.4'"),
    ('torch', 'PyTorch', "pip install 'torch>=2.5,<2.16'"),
    ('rosbags', 'rosbags', "pip install 'rosbags>=0.10,<0.12'"),
    ('matplotlib', 'matplotlib', "pip install 'matplotlib>=3.5,<3.12'; on ROS 2: "
                                 'sudo apt install python3-matplotlib'),
)


#: found, not imported, here: torch loads with the first learned stage, after the pipeline has
#: set OpenMP's wait policy (hardware.prepare_process), and a command that needs no network (and
#: ``--help``) does not wait a second or more for it; matplotlib is imported only where a report
#: draws its plots
FOUND_ONLY = ('torch', 'matplotlib')


def missing_dependency() -> str:
    """Return one line naming the first dependency that does not import ('' if none)."""
    for module, what, how in DEPENDENCIES:
        if module in FOUND_ONLY:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
                found = False
            if not found:
                return f'{what} is not installed (no module {module}): {how}'
            continue
        try:
            importlib.import_module(module)
        except ImportError as err:
            if isinstance(err, ModuleNotFoundError) and err.name == module:
                return f'{what} is not installed (no module {module}): {how}'
            return f'{what} ({module}) does not import ({first_line(str(err))}): {how}'
    return ''


class Parser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line (``PROG: error: ...``) and exit 2."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """
    Return the ``sgdfuse`` parser: every command's options, or only ``command``'s.

    Every command is listed (with its help line); the modules of the commands whose options are
    added are imported here, the one dispatch of the package made at run time (a command's
    module imports what its work needs, torch for training, onnxruntime, Cyclone DDS...).
    """
    parser = Parser(
        prog='sgdfuse', description='Thermal + visible fusion (SGDFuse for ROS 2).')
    parser.add_argument('-v', '--verbose', action='store_true', help='log more')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module_name, help_text) in COMMANDS.items():
        options = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            module = importlib.import_module(module_name)  # only the command that runs
            module.add_arguments(options)
            options.set_defaults(_main=module.main)
    return parser


def chosen_command(argv: Sequence[str]) -> Optional[str]:
    """Return the command ``argv`` names (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith('-')), None)


def main(argv=None) -> int:
    problem = missing_dependency()
    if problem:
        print(f'sgdfuse: error: {problem}', file=sys.stderr)
        return 1
    command = chosen_command(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command if command in COMMANDS else '')
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or an option refused at parse time (one line)
        return int(done.code or 0) if not isinstance(done.code, str) else 2
    if not getattr(args, '_main', None):
        parser.print_help()
        return 2
    prog = f'sgdfuse {args.command}'
    try:
        with installed(restore=argv is not None) as stop:
            logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                                format='%(levelname)s %(name)s: %(message)s')
            return _run(args, stop, prog)
    except StopNow as err:  # a signal before the command had begun its work
        return exit_status(prog, err)


def _run(args, stop, prog: str) -> int:
    try:
        status = int(args._main(args) or 0)
        stop.protect()  # done: a signal from here on changes only the exit status
    except StopNow:
        raise  # ends outside the stop request's handlers (main)
    except BaseException as err:  # noqa: B902 - the one handler says which ends are whose
        code = exit_status(prog, err)
        if code is None:
            raise
        return code
    if stop.requested and not stop.handled:
        # the signal came as the command was finishing: its work is complete, and said so
        print(f'{prog}: interrupted by {stop.name} as it was finishing; its results are '
              'complete', file=sys.stderr)
        return 128 + stop.signum
    return status
