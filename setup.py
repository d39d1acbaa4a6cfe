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

"""ament_python package: `colcon build` in a ROS 2 workspace, or `pip install -e .` without ROS."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'sgdfuse_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/models', [p for p in glob('models/*') if '.' in p]),
    ],
    install_requires=['setuptools'],  # pinned runtime dependencies: requirements.txt
    # As ros2 package templates declare it: `colcon test` runs pytest only for a package that
    # names pytest as its test dependency (otherwise it falls back to unittest and finds none).
    tests_require=['pytest'],
    extras_require={'test': ['pytest'],
                    'ray': ['ray>=2.9']},  # `sgdfuse corpus --ray` (requirements.txt pins it)
    zip_safe=True,
    maintainer='sgdfuse_ros developers',
    maintainer_email='sgdfuse-ros@example.org',
    description='SAM-guided few-step diffusion fusion of thermal and RGB cameras for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'fusion_node = sgdfuse_ros.ros.fusion_node:main',
            'sgdfuse = sgdfuse_ros.cli:main',
        ],
    },
)
