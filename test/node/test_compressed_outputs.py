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

"""image_transport's compressed outputs: names, formats, what they hold, sent only when wanted."""

import cv2
from node_support import FakePipeline, make_core, NS, send_pair
import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.transport.base import SENSOR_DATA

COMPRESSED = {'fused/image/compressed': 'bgr8; jpeg compressed bgr8',
              'semantic/labels/compressed': 'mono16; png compressed ',
              'semantic/targets/compressed': 'mono8; png compressed ',
              'semantic/overlay/compressed': 'bgr8; jpeg compressed bgr8'}


def decoded(msg):
    return cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_compressed_twins_arrive_as_image_transport_names_and_writes_them(scene):
    core, t = make_core(factory=FakePipeline)
    core.configure()
    for topic in COMPRESSED:  # advertised from configure on, as image_transport does
        publisher = t.publishers[f'{NS}/{topic}'][0]
        assert publisher.typename == messages.COMPRESSED
    core.activate()
    heard = {topic: [] for topic in list(COMPRESSED) + ['fused/image', 'semantic/labels']}
    for topic in heard:
        kind = messages.COMPRESSED if topic.endswith('/compressed') else messages.IMAGE
        t.create_subscription(topic, kind, heard[topic].append, SENSOR_DATA)
    send_pair(t, scene, 1.0)
    assert core.process_pending()
    for topic, label in COMPRESSED.items():
        assert len(heard[topic]) == 1, topic
        msg = heard[topic][0]
        assert msg.format == label and messages.stamp_seconds(msg) == 1.0, topic
    raw = heard['fused/image'][0]
    fused = np.asarray(raw.data, np.uint8).reshape(raw.height, raw.width, 3)
    jpeg = decoded(heard['fused/image/compressed'][0])
    assert jpeg.shape == fused.shape and np.abs(jpeg.astype(int) - fused).mean() < 3.0
    labels = heard['semantic/labels'][0]
    png = decoded(heard['semantic/labels/compressed'][0])
    assert png.dtype == np.uint16 and np.array_equal(  # lossless, all 16 bits
        png, np.frombuffer(bytes(labels.data), '<u2').reshape(labels.height, labels.width))
    # the node's own decoder (input.compressed) reads its compressed output back
    image, encoding = messages.image_from_msg(heard['fused/image/compressed'][0])
    assert encoding == 'bgr8' and image.shape == fused.shape
    core.shutdown()


def test_compressed_twins_are_encoded_only_while_someone_subscribes(scene):
    core, t = make_core({'output.overlay': False}, factory=FakePipeline)
    core.configure()
    core.activate()
    got = []
    t.create_subscription('fused/image/compressed', messages.COMPRESSED, got.append, SENSOR_DATA)
    send_pair(t, scene, 1.0)
    core.process_pending()
    assert len(got) == 1
    for topic in ('semantic/labels/compressed', 'semantic/targets/compressed',
                  'semantic/overlay/compressed'):
        assert t.sent(topic) == [], topic  # nobody listens: nothing encoded
    core.shutdown()


@pytest.mark.parametrize('quality', [30, 95])
def test_jpeg_quality_parameter_sets_the_size(scene, quality):
    core, t = make_core({'output.jpeg_quality': quality}, factory=FakePipeline)
    core.configure()
    core.activate()
    got = []
    t.create_subscription('fused/image/compressed', messages.COMPRESSED, got.append, SENSOR_DATA)
    send_pair(t, scene, 1.0)
    core.process_pending()
    size = len(got[0].data)
    core.shutdown()
    raw = cv2.imencode('.jpg', decoded(got[0]), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    assert abs(size - raw.size) < 0.25 * raw.size  # the quality asked for, not another


def test_output_compressed_false_advertises_no_compressed_topic():
    core, t = make_core({'output.compressed': False}, factory=FakePipeline)
    core.configure()
    assert not any(topic.endswith('/compressed') for topic, pubs in t.publishers.items() if pubs)
    core.shutdown()
