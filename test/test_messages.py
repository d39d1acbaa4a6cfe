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

"""The ground-floor messages module: image payloads, and the one table of topic names."""

import ast
from pathlib import Path

import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.messages import array_from_buffer

ROOT = Path(__file__).resolve().parent.parent


def test_array_from_buffer_checks_length_step_and_endianness():
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    data = img.astype('>u2').tobytes()
    out = array_from_buffer(data, 3, 4, 'mono16', 8, is_bigendian=True)
    np.testing.assert_array_equal(out, img)
    assert out.dtype == np.uint16 and out.dtype.byteorder in ('=', '<', '|')
    padded = np.zeros((3, 10), np.uint8)
    padded[:, :8] = img.view(np.uint8).reshape(3, 8)
    np.testing.assert_array_equal(array_from_buffer(padded.tobytes(), 3, 4, 'mono16', 10), img)
    with pytest.raises(InputError, match='bytes'):
        array_from_buffer(data[:-1], 3, 4, 'mono16', 8)
    with pytest.raises(InputError, match='step'):
        array_from_buffer(data, 3, 4, 'mono16', 4)
    with pytest.raises(InputError, match='zero size'):
        array_from_buffer(b'', 0, 4, 'mono16', 8)
    with pytest.raises(InputError, match='unsupported image encoding'):
        array_from_buffer(data, 3, 4, 'bayer_rggb8', 8)


def _topic_names():
    names = set(messages.INPUT_TOPICS.values()) | set(messages.OUTPUT_TYPES)
    names |= set(messages.COMPRESSED_OUTPUT_TYPES)
    names |= {messages.CAMERA_INFO_TOPIC, messages.THERMAL_INFO_TOPIC,
              messages.DIAGNOSTICS_TOPIC}
    return names | {'/' + name.lstrip('/') for name in names}


def _code_strings(path: Path):
    """Yield (line, text) of the string constants of a file that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docstrings:
            yield node.lineno, node.value


def test_topic_names_are_spelled_once():
    """The package and the benchmarks name a topic through the table, never as a literal."""
    names = _topic_names()
    found = []
    for folder in ('sgdfuse_ros', 'benchmarks'):
        for path in sorted((ROOT / folder).rglob('*.py')):
            if path == ROOT / 'sgdfuse_ros' / 'messages.py':
                continue
            found += [f'{path.relative_to(ROOT)}:{line} {text!r}'
                      for line, text in _code_strings(path) if text in names]
    assert found == []


def test_launch_file_defaults_are_the_table():
    """launch/fusion.launch.py (no package imports) remaps the table's input topics."""
    tree = ast.parse((ROOT / 'launch' / 'fusion.launch.py').read_text())
    arguments, remapped = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and len(node.elts) == 3 and \
                all(isinstance(e, ast.Constant) for e in node.elts):
            arguments[node.elts[0].value] = node.elts[1].value
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and \
                isinstance(node.elts[0], ast.Constant):
            remapped.add(node.elts[0].value)
    table = {'thermal_topic': messages.INPUT_TOPICS['thermal'],
             'rgb_topic': messages.INPUT_TOPICS['visible'],
             'camera_info_topic': messages.CAMERA_INFO_TOPIC,
             'thermal_info_topic': messages.THERMAL_INFO_TOPIC}
    assert {name: arguments.get(name) for name in table} == table
    assert set(table.values()) <= remapped


def test_detector_launch_example_passes_every_fusion_argument_and_reads_the_fused_topic():
    """
    launch/detector.launch.py hands fusion.launch.py all its arguments, same defaults.

    All but one: behind a detector the first stage tuned for detectors runs by default.
    """
    fusion = ast.parse((ROOT / 'launch' / 'fusion.launch.py').read_text())
    names = {node.elts[0].value for node in ast.walk(fusion)
             if isinstance(node, ast.Tuple) and len(node.elts) == 3
             and isinstance(node.elts[0], ast.Constant)}
    source = (ROOT / 'launch' / 'detector.launch.py').read_text()
    example = ast.parse(source)
    passed = defaults = None
    for node in example.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == 'FUSION_ARGUMENTS':
            passed = set(ast.literal_eval(node.value))
    for node in ast.walk(example):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'defaults':
            defaults = ast.literal_eval(node.value)
    assert passed == names
    fusion_defaults = {node.elts[0].value: node.elts[1].value for node in ast.walk(fusion)
                       if isinstance(node, ast.Tuple) and len(node.elts) == 3
                       and all(isinstance(e, ast.Constant) for e in node.elts)}
    assert defaults == {**{k: v for k, v in fusion_defaults.items() if k in defaults},
                        'tuned_for': 'detectors'}
    assert fusion_defaults['tuned_for'] == ''  # fusion.launch.py: the parameter file's
    assert set(defaults) == names - {'params_file'}
    assert '/{namespace}/' + messages.FUSED_TOPIC in source  # the detector reads fused/image


@pytest.mark.parametrize('array, encoding', [
    (np.arange(12, dtype=np.uint16).reshape(3, 4), 'mono16'),
    (np.arange(36, dtype=np.uint8).reshape(3, 4, 3), 'bgr8'),
    (np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), '32FC1'),
])
def test_image_message_round_trip(array, encoding):
    msg = messages.image_msg(array, messages.make_header(1.5, 'cam'))
    assert msg.encoding == encoding
    again = messages.deserialize(messages.serialize(msg), messages.IMAGE)
    image, got = messages.image_from_msg(again)
    assert got == encoding
    np.testing.assert_array_equal(image, array)
    assert messages.stamp_nanoseconds(again) == 1_500_000_000


def test_detection_array_round_trips_in_the_vision_msgs_layout():
    header = messages.make_header(12.25, 'rgb_optical')
    msg = messages.detection_array_msg(header, [((10, 20, 16, 36), 0.8, '7', 'warm_target'),
                                                ((0, 0, 3, 2), 0.25, '9', 'warm_target')])
    assert messages.OUTPUT_TYPES[messages.DETECTIONS_TOPIC] == messages.DETECTION_ARRAY
    back = messages.deserialize(messages.serialize(msg), messages.DETECTION_ARRAY)
    assert messages.stamp_nanoseconds(back) == 12_250_000_000
    assert back.header.frame_id == 'rgb_optical'
    first = back.detections[0]
    assert messages.stamp_nanoseconds(first) == 12_250_000_000
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (13.0, 28.0)
    assert (first.bbox.size_x, first.bbox.size_y, first.bbox.center.theta) == (6.0, 16.0, 0.0)
    assert first.id == '7'
    assert first.results[0].hypothesis.class_id == 'warm_target'
    assert first.results[0].hypothesis.score == pytest.approx(0.8)
    assert first.results[0].pose.pose.orientation.w == 1.0
    assert [d.id for d in back.detections] == ['7', '9']
    empty = messages.detection_array_msg(header, [])
    assert messages.deserialize(messages.serialize(empty), messages.DETECTION_ARRAY).detections \
        == []
    # the field layout of vision_msgs 4.x (Humble, Jazzy), as the registered definition holds it
    fields = messages.typestore().fielddefs
    assert [name for name, _ in fields['vision_msgs/msg/Detection2D'][1]] == \
        ['header', 'results', 'bbox', 'id']
    assert [name for name, _ in fields['vision_msgs/msg/BoundingBox2D'][1]] == \
        ['center', 'size_x', 'size_y']
