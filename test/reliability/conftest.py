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

"""Fixtures of the reliability tests: small and read-only file systems, data for long runs."""

from pathlib import Path
import shutil
import subprocess

import pytest
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.eval.synthetic_pairs import write_sample


def _mount(target, options: str):
    """Mount a tmpfs on ``target``, or skip saying why this machine does not allow it."""
    if shutil.which('mount') is None:
        pytest.skip('no mount command here: the tmpfs cases need one (and root)')
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): '
                    f'{done.stderr.strip() or done.returncode}')


def _unmount(target):
    subprocess.run(['umount', '-l', str(target)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """Make fresh tmpfs folders of a given size (a factory: call it with '600k')."""
    mounted = []

    def make(size: str):
        target = tmp_path / f'disk{len(mounted)}'
        _mount(target, f'size={size}')
        mounted.append(target)
        return target

    yield make
    for target in mounted:
        _unmount(target)


@pytest.fixture
def read_only_dir(tmp_path):
    """Give a folder on a read-only tmpfs (root could write anywhere else)."""
    target = tmp_path / 'read_only'
    _mount(target, 'ro,size=64k')
    yield target
    _unmount(target)


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    """Write four 160x120 pairs, repeated as 240 files (cheap copies): a run that lasts."""
    root = tmp_path_factory.mktemp('pairs')
    ir, vis = write_sample(root / 'base', n=4, size=(160, 120))
    for folder, source in (('ir', Path(ir)), ('vis', Path(vis))):
        (root / 'many' / folder).mkdir(parents=True)
        for i in range(240):
            (root / 'many' / folder / f'p{i:03d}.png').write_bytes(
                (source / f'sample_00{i % 4}.png').read_bytes())
    return root / 'many' / 'ir', root / 'many' / 'vis', Path(ir), Path(vis)


@pytest.fixture(scope='module')
def long_bag(pairs, tmp_path_factory):
    """Make a bag of 400 frames of 160x120 (4 pairs, 100 passes)."""
    bag = tmp_path_factory.mktemp('bags') / 'long'
    assert cli(['make-bag', '--ir', str(pairs[2]), '--vis', str(pairs[3]), '--out', str(bag),
                '--repeat', '100', '--quiet']) == 0
    return bag
