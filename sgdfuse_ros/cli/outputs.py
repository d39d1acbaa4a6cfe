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
What the offline commands write never costs the user an input or a previous result.

- :func:`check_apart`: one check, run by every command before any work, that no output path is,
  holds or lies inside an input path (a bag and its storage files, image folders and the images
  in them, split files, weights, configs), symbolic links and ``..`` resolved, hard links
  compared by inode; optionally that the outputs do not overlap each other (``--report`` inside
  ``--out``). One :class:`InputError` line naming both options and paths.
- :class:`ReplacedPath` (a bag folder or file replaced as a whole) and :class:`ReplacedFiles`
  (named files and folders of an output folder that also holds other things): the new output is
  written beside the old one (a hidden scratch folder in the same folder, so the final step is a
  rename on one file system) and :meth:`commit` swaps it in once it is ready; :meth:`discard`
  leaves the previous result as it was. Scratch folders left by a killed run are removed by the
  next run that writes there (their process id is gone).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import tempfile
from typing import Iterable, List, Optional, Sequence, Tuple

from ..config import default_config_path, resolve_model_path
from ..errors import error_line, InputError
from ..onnx.scratch import sweep_scratch

Named = Tuple[str, object]  # (option or parameter, path); a None path is skipped


def _real(path) -> str:
    return os.path.realpath(os.fspath(path))  # as the commands open it (no ~ expansion)


def _inside(child: str, parent: str) -> bool:
    return child != parent and child.startswith(parent.rstrip(os.sep) + os.sep)


def _identity(path: str):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _chain(path: str) -> set:
    """(device, inode) of every existing folder above ``path`` (a bind mount is seen too)."""
    found = set()
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return found
        path = parent
        ident = _identity(path)
        if ident is not None:
            found.add(ident)


def _clash(out: str, other: str) -> Optional[str]:
    """How output ``out`` overlaps ``other`` (real paths), or None."""
    out_id, other_id = _identity(out), _identity(other)
    if out == other or (out_id is not None and out_id == other_id):
        return 'is'
    if _inside(out, other) or (other_id is not None and other_id in _chain(out)):
        return 'is inside'
    if _inside(other, out) or (out_id is not None and out_id in _chain(other)):
        return 'holds'
    return None


def _items(named: Iterable[Named]) -> List[Tuple[str, object, str]]:
    return [(label, path, _real(path)) for label, path in named
            if path is not None and os.fspath(path) != '']


def check_apart(inputs: Iterable[Named], outputs: Iterable[Named],
                outputs_apart: bool = True) -> None:
    """
    Refuse an output that is, holds or lies inside an input; one InputError line.

    With ``outputs_apart`` the outputs must not overlap each other either. Inputs that do not
    exist are left to the command (which names them as missing). Called before any work, so
    that nothing is touched.
    """
    # an input that is not there cannot be lost (the command says it is missing)
    ins = [item for item in _items(inputs) if os.path.lexists(item[2])]
    outs = _items(outputs)
    for option, path, real in outs:
        for label, in_path, in_real in ins:
            how = _clash(real, in_real)
            if how:
                where = '' if os.fspath(path) == real else f' ({real})'
                raise InputError(
                    f'{option} {path}{where} {how} the input {label} {in_path}: an output '
                    f'never replaces, or writes into, what the command reads; choose another '
                    f'{option}')
    if outputs_apart:
        for i, (option, path, real) in enumerate(outs):
            for other, other_path, other_real in outs[i + 1:]:
                how = _clash(real, other_real)
                if how:
                    raise InputError(f'{option} {path} {how} {other} {other_path}: the two '
                                     f'outputs must be apart; choose another {option}')


def config_inputs(config_path, config: Optional[dict] = None,
                  stages: Sequence[str] = ('first_stage', 'refiner')) -> List[Named]:
    """
    Return the config file and the model files it names, as inputs for :func:`check_apart`.

    The package's config when ``config_path`` is None, the shipped weights for an empty value.
    """
    found: List[Named] = [('--config', Path(config_path) if config_path else
                           default_config_path())]
    if config is not None:
        for stage in stages:
            key = f'{stage}.weights'
            if key in config:
                found.append((key, resolve_model_path(config[key], f'{stage}.pt')))
        if config.get('prior.sam.checkpoint'):
            found.append(('prior.sam.checkpoint', Path(config['prior.sam.checkpoint'])))
    return found


def pair_inputs(pairs, split=None) -> List[Named]:
    """Return the image folders and images of ``pairs`` (and the split file) as inputs."""
    found: List[Named] = [('--split', split)] if split else []
    folders = {}
    for pair in pairs:
        for label, path in (('thermal image', pair.thermal), ('visible image', pair.visible)):
            folders.setdefault(Path(path).parent, label.replace('image', 'folder'))
            found.append((label, path))
    return [(label, folder) for folder, label in folders.items()] + found


# --- replacing a previous result only when the new one is ready ------------------------------

SCRATCH_TAG = '.sgdfuse-new-'


def _scratch(folder: Path, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sweep_scratch(folder, prefix)
    return Path(tempfile.mkdtemp(prefix=f'{prefix}{os.getpid()}-', dir=folder))


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


class _Replacement:
    scratch: Optional[Path] = None
    previous = False

    def commit(self) -> None:  # pragma: no cover - defined by the subclasses
        raise NotImplementedError

    def discard(self) -> None:
        """Forget the new output; the previous one stays as it was."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """
        Settle on an exception: the new output replaces nothing.

        A partial one is kept where there was nothing to replace.
        """
        if exc_type is not None:
            self.finish(False)
        return False

    def finish(self, ready: bool) -> bool:
        """
        Commit the new result when it is ready, else discard it; return whether committed.

        Where there was nothing to replace a partial result is committed too (the work done is
        kept).
        """
        if ready or not self.previous:
            self.commit()
            return True
        self.discard()
        return False


class ReplacedPath(_Replacement):
    """
    An output replaced as a whole (a bag folder or file).

    Written at :attr:`path`, inside a scratch folder beside ``final`` (so under the same name);
    :meth:`commit` swaps it in.
    """

    def __init__(self, final):
        self.final = Path(final)
        self.previous = _exists(self.final)
        self.scratch = _scratch(self.final.parent, f'.{self.final.name}{SCRATCH_TAG}')
        self.path = self.scratch / self.final.name

    def commit(self) -> None:
        """Put the new output in place of the previous one (which is then removed)."""
        if self.scratch is None:
            return
        if _exists(self.path):
            if _exists(self.final):
                os.replace(self.final, self.scratch / '.previous')
            os.replace(self.path, self.final)
        self.discard()


class ReplacedFiles(_Replacement):
    """
    The named entries (``names``) of an output folder that may hold other things.

    Written under :attr:`path` (a scratch folder inside ``folder``), moved into ``folder`` by
    :meth:`commit`, which first moves every previous entry of those names away (no mix of two
    runs).
    """

    def __init__(self, folder, names: Sequence[str], tag: str):
        self.folder = Path(folder)
        self.names = tuple(names)
        self.previous = any(_exists(self.folder / name) for name in self.names)
        self.scratch = _scratch(self.folder, f'.sgdfuse-{tag}-new-')
        self.path = self.scratch

    def commit(self) -> None:
        if self.scratch is None:
            return
        old = self.scratch / '.previous'
        old.mkdir()
        for name in self.names:
            if _exists(self.folder / name):
                os.replace(self.folder / name, old / name)
        for name in self.names:
            if _exists(self.scratch / name):
                os.replace(self.scratch / name, self.folder / name)
        self.discard()


# --- output paths, checked before any work ---------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def _check_writable_folder(folder: Path, option: str, target: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder, prefix='.sgdfuse-write-check-'):
            pass
    except OSError as err:
        raise InputError(f'{option} {target}: cannot write in {folder} '
                         f'({err.strerror or error_line(err, 160)})') from None


def check_output_dir(path, option: str = '--out', children: Sequence[str] = ()) -> Path:
    """``path`` is (or can be created as) a writable folder whose ``children`` are folders."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f'{option} {path} is a file; a folder is needed')
    anchor = _existing_ancestor(path)
    if anchor.exists() and not anchor.is_dir():
        raise InputError(f'{option} {path}: {anchor} is a file, not a folder')
    for child in children:
        if (path / child).exists() and not (path / child).is_dir():
            raise InputError(f'{option} {path}: {path / child} is a file; this command writes '
                             f'a folder there')
    _check_writable_folder(anchor, option, path)
    return path


def check_output_file(path, option: str) -> Path:
    """``path`` is (or can be created as) a writable file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f'{option} {path} is a folder; a file name is needed')
    anchor = _existing_ancestor(path.parent)
    if anchor.exists() and not anchor.is_dir():
        raise InputError(f'{option} {path}: {anchor} is a file, not a folder')
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f'{option} {path} is not writable')
    _check_writable_folder(anchor, option, path)
    return path
