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
Launch test files (a ``generate_test_description``) need launch_testing's pytest plugin.

Under ``colcon test`` (the README's route) the plugin is loaded and runs them. Where ROS 2 is
sourced but the plugin was turned off because this pytest cannot load it (scripts/test.sh in the
project's own virtual environment: scripts/ros_pytest_args.py), pytest would run their test
classes without launching anything: they are skipped instead, saying how to run them.
"""

import pytest


def pytest_collection_modifyitems(config, items):
    if config.pluginmanager.has_plugin('launch_testing'):
        return
    skip = pytest.mark.skip(reason=(
        'the pytest plugin of launch_testing is not loaded in this pytest (ROS 2 sourced into '
        'a virtual environment whose pytest cannot load it): run launch tests with colcon '
        'test on the README route, or launch_test FILE'))
    for item in items:
        module = getattr(item, 'module', None)
        if module is not None and hasattr(module, 'generate_test_description'):
            item.add_marker(skip)
