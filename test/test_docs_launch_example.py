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
The launch example of docs/ros.md ("Launching with your camera drivers") stays right.

It is Python that compiles, it passes only arguments fusion.launch.py declares, and the topics
it remaps the node's inputs to are the ones its drivers publish: usb_cam's ``image_raw`` in its
namespace, realsense2_camera's ``/<camera_namespace>/<camera_name>/color/...``. (Running it needs
the cameras; this checks what can be checked without them.)
"""

import ast
from pathlib import Path
import re

ROOT = Path(__file__).resolve().parents[1]


def example_source() -> str:
    text = (ROOT / 'docs' / 'ros.md').read_text(encoding='utf-8')
    section = text.split('### Launching with your camera drivers', 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def literal_kwargs(call: ast.Call) -> dict:
    out = {}
    for keyword in call.keywords:
        value = keyword.value
        if isinstance(value, ast.Attribute) and value.attr == 'items':  # {...}.items()
            value = value.value
        if isinstance(value, ast.Call) and getattr(value.func, 'attr', '') == 'items':
            value = value.func.value
        try:
            out[keyword.arg] = ast.literal_eval(value)
        except ValueError:
            out[keyword.arg] = None
    return out


def declared_launch_arguments() -> set:
    tree = ast.parse((ROOT / 'launch' / 'fusion.launch.py').read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'arguments':
            return {ast.literal_eval(entry.elts[0]) for entry in node.value.elts}
    raise AssertionError('no arguments list in fusion.launch.py')


def test_launch_example_remaps_the_drivers_topics_into_the_node():
    source = example_source()
    compile(source, 'rig.launch.py', 'exec')  # valid Python
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    driver = next(literal_kwargs(c) for c in calls if getattr(c.func, 'id', '') == 'Node')
    includes = {}
    for call in calls:
        if getattr(call.func, 'id', '') == 'IncludeLaunchDescription':
            package = ast.literal_eval(call.args[0].args[0])
            includes[package] = literal_kwargs(call)['launch_arguments']
    fusion, realsense = includes['sgdfuse_ros'], includes['realsense2_camera']
    assert set(fusion) <= declared_launch_arguments(), set(fusion)
    assert driver['package'] == 'usb_cam' and driver['parameters'][0]['pixel_format'] == 'mono16'
    assert fusion['thermal_topic'] == f"/{driver['namespace']}/image_raw"
    camera = f"/{realsense['camera_namespace']}/{realsense['camera_name']}/color"
    assert fusion['rgb_topic'] == f'{camera}/image_raw'
    assert fusion['camera_info_topic'] == f'{camera}/camera_info'
