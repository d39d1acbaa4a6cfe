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
Start the sgdfuse_ros fusion node (a lifecycle node that configures and activates itself).

    ros2 launch sgdfuse_ros fusion.launch.py \
        thermal_topic:=/flir/image_raw rgb_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info namespace:=front

Arguments: namespace, node_name, thermal_topic, rgb_topic, camera_info_topic,
thermal_info_topic (remappings of thermal/image_raw, rgb/image_raw, rgb/camera_info,
thermal/camera_info), params_file (default: the installed
config/fusion.yaml), use_sim_time (true with `ros2 bag play --clock`), device (auto, cpu,
cuda; empty keeps the parameter file's), tuned_for (images or detectors: the shipped
first-stage weights, first_stage.tuned_for; empty keeps the parameter file's), autostart,
log_level.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode


def _truthy(text):
    return text.strip().lower() in ('1', 'true', 'yes', 'on')


def _fusion_node(context):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {
        'use_sim_time': _truthy(value('use_sim_time')),
        'autostart': _truthy(value('autostart')),
    }
    if value('device'):
        overrides['device'] = value('device')
    if value('tuned_for'):
        overrides['first_stage.tuned_for'] = value('tuned_for')
    return [LifecycleNode(
        package='sgdfuse_ros',
        executable='fusion_node',
        name=value('node_name'),
        namespace=value('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[value('params_file'), overrides],
        remappings=[
            ('thermal/image_raw', value('thermal_topic')),
            ('rgb/image_raw', value('rgb_topic')),
            ('rgb/camera_info', value('camera_info_topic')),
            ('thermal/camera_info', value('thermal_info_topic')),
        ],
        arguments=['--ros-args', '--log-level', value('log_level')],
    )]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory('sgdfuse_ros'), 'config',
                                  'fusion.yaml')
    arguments = [
        ('namespace', '', 'namespace of the node and of its relative topics'),
        ('node_name', 'fusion_node', 'name of the node'),
        ('thermal_topic', 'thermal/image_raw', 'thermal camera images (sensor_msgs/Image)'),
        ('rgb_topic', 'rgb/image_raw', 'RGB camera images (sensor_msgs/Image)'),
        ('camera_info_topic', 'rgb/camera_info', 'RGB camera info (sensor_msgs/CameraInfo)'),
        ('thermal_info_topic', 'thermal/camera_info',
         'thermal camera info (sensor_msgs/CameraInfo; read with registration.undistort)'),
        ('params_file', default_params, 'parameter file (ROS 2 layout)'),
        ('use_sim_time', 'false', 'use /clock (true with `ros2 bag play --clock`)'),
        ('device', '', 'auto, cpu or cuda; empty keeps the parameter file value'),
        ('tuned_for', '', 'images or detectors: the shipped first-stage weights '
         '(first_stage.tuned_for; detectors for a node that feeds a detector); empty keeps the '
         'parameter file value'),
        ('autostart', 'true', 'configure and activate on start (false: ros2 lifecycle set)'),
        ('log_level', 'info', 'logging level of the node'),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in arguments]
        + [OpaqueFunction(function=_fusion_node)])
