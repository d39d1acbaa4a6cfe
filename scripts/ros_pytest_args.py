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
Print the pytest options this Python needs to start where ROS 2 is sourced (one per line).

With ROS 2 sourced, pytest loads ROS's pytest plugins (entry points of launch_testing,
launch_testing_ros and launch_pytest) into every run. They work with the distribution's pytest
(the README's route for ROS users: a virtual environment with --system-site-packages, tested
by `colcon test`). In the project's own virtual environment (requirements.txt: pytest 9.2, no
lark) they do not: launch needs `lark`, and Jazzy's launch_testing 3.4.3 fails to register with
pytest 9 (`PluginValidationError ... Argument(s) {'path'}`, ros2/launch#979, fixed by #991), so
pytest stops before running anything.

This script asks this Python's pytest whether it starts with the plugins it finds. When it
does not, it prints `-p no:NAME` for each of them (scripts/test.sh passes these on) and says
so on stderr; the launch tests then skip, saying how to run them (test/ros/conftest.py). When
it does, or no ROS plugin is installed, it prints nothing.

    python scripts/ros_pytest_args.py            # the options, one per line
"""

from importlib import metadata
import os
import subprocess
import sys
import tempfile

ROS_PLUGINS = ('launch_testing', 'launch_ros', 'launch_pytest')


def installed_ros_plugins():
    """Names of ROS's pytest plugins this Python would load (pytest11 entry points)."""
    try:
        points = metadata.entry_points(group='pytest11')
    except TypeError:  # Python < 3.10
        points = metadata.entry_points().get('pytest11', [])
    return sorted({point.name for point in points if point.name in ROS_PLUGINS})


def pytest_starts(extra=()):
    """Return (True, '') when pytest starts (collects an empty folder), else (False, why)."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTEST_ADDOPTS', 'PYTEST_PLUGINS')}
    with tempfile.TemporaryDirectory(prefix='sgdfuse_pytest_probe_') as empty:
        done = subprocess.run([sys.executable, '-m', 'pytest', '--co', '-q',
                               '-p', 'no:cacheprovider', *extra, empty],
                              cwd=empty, env=env, capture_output=True, text=True)
    if done.returncode in (0, 5):  # 5: no tests collected, as expected
        return True, ''
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return False, ' / '.join(lines[-3:])


def main() -> int:
    plugins = installed_ros_plugins()
    if not plugins:
        return 0
    ok, why = pytest_starts()
    if ok:
        return 0
    options = [arg for name in plugins for arg in ('-p', 'no:' + name)]
    import pytest
    print(f'ROS 2 is sourced, but its pytest plugins ({", ".join(plugins)}) do not load into '
          f'pytest {pytest.__version__} of {sys.executable}: {why}\n'
          f'running without them ({" ".join(options)}); the launch tests skip here. Run them '
          f'with the pytest of the distribution: colcon test on the README route (For ROS 2 '
          f'users), or launch_test FILE.', file=sys.stderr)
    print('\n'.join(options))
    return 0


if __name__ == '__main__':
    sys.exit(main())
