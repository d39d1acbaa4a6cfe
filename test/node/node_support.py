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

"""Helpers of the node tests (no tests here): a fake pipeline, a core over memory, messages."""

import threading

import numpy as np
from sgdfuse_ros import messages
from sgdfuse_ros.config import load_config
from sgdfuse_ros.node.accounting import accounting_errors
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.pipeline.fusion_pipeline import FusionResult
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.transport.base import SENSOR_DATA
from sgdfuse_ros.transport.memory import MemoryTransport


NS = '/cam'
W, H = 96, 64


class FakePipeline:
    """Records calls; can block inside process() until released."""

    instances = []

    def __init__(self, config, gate=None):
        self.config = config
        self.device = 'cpu'
        self.calls = []
        self.closed = False
        self.gate = gate
        self.entered = threading.Event()
        FakePipeline.instances.append(self)

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        self.calls.append((thermal.shape, thermal_encoding, visible_encoding))
        self.entered.set()
        if self.gate is not None and len(self.calls) > 1:  # the warm-up call never blocks
            assert self.gate.wait(5.0), 'test never released the pipeline'
        gray = visible.mean(axis=2).astype(np.uint8) if visible.ndim == 3 else visible
        prior = SemanticPrior.empty(gray.shape, 'thermal')
        return FusionResult(np.dstack([gray] * 3), gray, prior, thermal.astype(np.float32),
                            visible, gray.astype(np.float32) / 255, {'total': 1.0})

    def close(self):
        self.closed = True


def make_core(overrides=None, factory=None, threaded=False, transport=None):
    transport = transport or MemoryTransport(NS, 'fusion_node', roundtrip=True)
    config = load_config(overrides=overrides or {})
    core = FusionNodeCore(transport, config, name=NS + '/fusion_node',
                          pipeline_factory=factory, threaded=threaded)
    return core, transport


def listen(transport, *topics):
    """Subscribe to output ``topics`` as a consumer would; return {topic: [messages heard]}."""
    heard = {}
    for topic in topics:
        heard[topic] = []
        transport.create_subscription(topic, messages.OUTPUT_TYPES[topic], heard[topic].append,
                                      SENSOR_DATA)
    return heard


def thermal_msg(image, stamp, encoding='mono16', frame='thermal_optical'):
    return messages.image_msg(image, messages.make_header(float(stamp), frame), encoding)


def visible_msg(image, stamp, encoding='bgr8', frame='rgb_optical'):
    return messages.image_msg(image, messages.make_header(float(stamp), frame), encoding)


def send_pair(transport, scene, stamp, jitter=0.003):
    thermal, vis, _ = scene
    transport.publish('thermal/image_raw', thermal_msg(thermal, stamp + jitter))
    transport.publish('rgb/image_raw', visible_msg(vis, stamp))


def balanced(core):
    assert accounting_errors(core.stats()) == []
