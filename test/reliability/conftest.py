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

"""Fixtures of the reliability tests: small and read-only file systems (tmpfs mounts)."""

import shutil
import subprocess

import pytest


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
