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
An example: the fusion node with a detector behind it, the detector reading ``fused/image``.

    # yolo_ros (github.com/mgonzs13/yolo_ros; its yolo_bringup/launch/yolo.launch.py):
    ros2 launch sgdfuse_ros detector.launch.py namespace:=front \
        thermal_topic:=/flir/image_raw rgb_topic:=/camera/color/image_raw \
        detector_args:="model:=yolov8m.pt device:=cpu"

    # any detector node that subscribes an image topic (here its 'image' is remapped):
    ros2 launch sgdfuse_ros detector.launch.py detector:=node \
        detector_package:=my_detector detector_executable:=detector_node \
        detector_image_topic:=image

Arguments: those of ``fusion.launch.py`` (namespace, node_name, thermal_topic, rgb_topic,
camera_info_topic, thermal_info_topic, params_file, use_sim_time, device, tuned_for, autostart,
log_level; here ``tuned_for`` defaults to ``detectors``: the first stage fine-tuned for a
detector behind it, ``tuned_for:=images`` for the image-tuned one), and

- ``detector``: ``yolo_ros`` (default: includes yolo_bringup's yolo.launch.py with
  ``input_image_topic`` set to the fused image), ``node`` (runs ``detector_package`` /
  ``detector_executable`` in the same namespace, with its ``detector_image_topic`` remapped to
  the fused image) or ``none`` (the fusion node alone);
- ``detector_args``: more ``name:=value`` arguments for yolo.launch.py (space-separated);
- ``detector_package``, ``detector_executable``, ``detector_image_topic`` for ``node``.

The fused image is ``<namespace>/fused/image`` (sensor_msgs/Image bgr8, the RGB camera's stamp
and frame); the node's own warm targets are ``<namespace>/semantic/detections``
(vision_msgs/Detection2DArray), so a tracker or a fusion of both can subscribe either. The
detector must be installed; this package does not depend on it.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

FUSION_ARGUMENTS = ('namespace', 'node_name', 'thermal_topic', 'rgb_topic', 'camera_info_topic',
                    'thermal_info_topic', 'params_file', 'use_sim_time', 'device', 'tuned_for',
                    'autostart', 'log_level')


def fused_topic(namespace: str) -> str:
    """Return the fully qualified fused image topic of a fusion node in ``namespace``."""
    namespace = namespace.strip('/')
    return f'/{namespace}/fused/image' if namespace else '/fused/image'


def _parse_arguments(text: str) -> dict:
    """``'a:=1 b:=2'`` -> ``{'a': '1', 'b': '2'}``."""
    out = {}
    for item in text.split():
        if ':=' not in item:
            raise ValueError(f'detector_args: {item!r} is not name:=value')
        name, value = item.split(':=', 1)
        out[name] = value
    return out


def _detector(context):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    kind = value('detector')
    image = fused_topic(value('namespace'))
    if kind == 'none':
        return []
    if kind == 'yolo_ros':
        yolo = os.path.join(get_package_share_directory('yolo_bringup'), 'launch',
                            'yolo.launch.py')
        arguments = {'input_image_topic': image}
        arguments.update(_parse_arguments(value('detector_args')))
        return [IncludeLaunchDescription(PythonLaunchDescriptionSource(yolo),
                                         launch_arguments=arguments.items())]
    if kind == 'node':
        return [Node(package=value('detector_package'),
                     executable=value('detector_executable'),
                     namespace=value('namespace'), output='screen',
                     parameters=[{'use_sim_time': value('use_sim_time').lower() == 'true'}],
                     remappings=[(value('detector_image_topic'), image)])]
    raise ValueError(f'detector must be yolo_ros, node or none, not {kind!r}')


def generate_launch_description():
    fusion = os.path.join(get_package_share_directory('sgdfuse_ros'), 'launch',
                          'fusion.launch.py')
    defaults = {'namespace': '', 'node_name': 'fusion_node', 'thermal_topic': 'thermal/image_raw',
                'rgb_topic': 'rgb/image_raw', 'camera_info_topic': 'rgb/camera_info',
                'thermal_info_topic': 'thermal/camera_info',
                'use_sim_time': 'false', 'device': '', 'tuned_for': 'detectors',
                'autostart': 'true', 'log_level': 'info'}
    declared = [DeclareLaunchArgument(name, default_value=default)
                for name, default in defaults.items()]
    declared.append(DeclareLaunchArgument(
        'params_file', default_value=os.path.join(get_package_share_directory('sgdfuse_ros'),
                                                  'config', 'fusion.yaml')))
    declared += [
        DeclareLaunchArgument('detector', default_value='yolo_ros',
                              description='yolo_ros, node or none'),
        DeclareLaunchArgument('detector_args', default_value='',
                              description='name:=value arguments for yolo.launch.py'),
        DeclareLaunchArgument('detector_package', default_value=''),
        DeclareLaunchArgument('detector_executable', default_value=''),
        DeclareLaunchArgument('detector_image_topic', default_value='image_raw',
                              description="the detector's image topic, remapped to the fused "
                                          'image'),
    ]
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(fusion),
        launch_arguments={name: LaunchConfiguration(name)
                          for name in FUSION_ARGUMENTS}.items())
    return LaunchDescription(declared + [include, OpaqueFunction(function=_detector)])
