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

"""Shared fixtures: the RoadScene folder ($SGDFUSE_DATA, else ../shared/data/roadscene)."""

from importlib import metadata
import os
import signal

import pytest

from sgdfuse_ros.eval.datasets import default_data_dir


def pytest_configure(config):
    """
    Give this process the stop signals' usual actions when it was started with them ignored.

    The signal tests play a user at a terminal: Ctrl-C, SIGTERM, a hangup, sent to a command in
    this process or in a child. A suite started in the background of a non-interactive shell (as
    `cmd &` in a script) or under nohup has SIGINT or SIGHUP ignored; every child inherits that,
    and the commands rightly leave an ignored signal ignored. Without this the tests would measure
    how the suite was started, not the commands.
    """
    for sig, action in ((signal.SIGINT, signal.default_int_handler),
                        (signal.SIGTERM, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, action)


def pytest_report_header(config):
    """Name the Python stack of this run (CI runs the suite on two: .ci/run)."""
    import cv2
    import numpy

    def where(module):
        return os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return 'absent'
    return [f'stack: numpy {numpy.__version__} from {where(numpy)}; '
            f'OpenCV {cv2.__version__} from {where(cv2)}',
            'stack: ' + ', '.join(f'{dist} {version(dist)}' for dist in
                                  ('torch', 'onnxruntime-gpu', 'onnxruntime', 'rosbags'))]


@pytest.fixture(scope='session')
def roadscene():
    path = default_data_dir(beside_checkout=True)
    if path is None or not (path / 'ir').is_dir():
        pytest.skip('RoadScene data not found: set SGDFUSE_DATA to the roadscene folder')
    return path
