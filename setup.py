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
    # What every installation needs, as ranges that accept both the pinned stack
    # (requirements.txt) and the ROS 2 distributions' numpy 1.x (Humble 1.21, Jazzy 1.26).
    # OpenCV is an extra: a ROS 2 system has its own cv2 (python3-opencv, which cv_bridge is
    # built against; pip cannot see it) that a pip wheel must not shadow; `sgdfuse` stops with
    # one line naming what to install when cv2 is missing. colcon installs none of these (it
    # runs `setup.py install --single-version-externally-managed` / `develop --no-deps`):
    # ROS users install requirements-ros.txt instead.
    install_requires=[
        'setuptools',
        'numpy>=1.21,<3',
        'PyYAML>=5.4',
        'torch>=2.5,<2.16',
        'onnx>=1.16,<1.24',
        'rosbags>=0.10,<0.12',
        'matplotlib>=3.5,<3.12',  # every evaluate/replay/corpus report draws its plots
    ],
    # `pip install '.[opencv,onnxruntime]'`: one key per optional feature (literal, as colcon
    # and test/test_colcon_setup.py read it)
    extras_require={
        'opencv': ['opencv-python-headless>=4.5,<6'],
        'onnxruntime': ['onnxruntime>=1.18,<1.32'],  # backend auto/onnx on the CPU
        'gpu': ['onnxruntime-gpu>=1.18,<1.32'],  # instead of onnxruntime, never both
        'sam': ['segment-anything>=1.0,<2', 'torchvision>=0.20,<0.30'],
        'mobilesam': ['segment-anything>=1.0,<2', 'torchvision>=0.20,<0.30',
                      'mobilesam-mirror>=1.0,<2', 'timm>=1.0,<2'],  # prior.sam.model_type vit_t
        'live': ['cyclonedds>=0.10,<12'],
        'test': ['pytest'],
        'ray': ['ray>=2.9'],  # `sgdfuse corpus --ray` (requirements.txt pins it)
    },
    # As ros2 package templates declare it: `colcon test` runs pytest only for a package that
    # names pytest as its test dependency (otherwise it falls back to unittest and finds none).
    tests_require=['pytest'],
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
