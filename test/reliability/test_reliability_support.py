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
Helpers for the reliability tests (no tests here).

A node core on an in-memory transport, a clock the test moves, malformed images, and the accounting
check every test makes.
"""

from __future__ import annotations

import numpy as np
from sgdfuse_ros import messages
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.node.core import accounting_errors, FusionNodeCore
from sgdfuse_ros.pipeline.fusion_pipeline import FusionResult
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.transport.memory import MemoryTransport

NS = '/rel'
W, H = 64, 48


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0):
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += float(seconds)


class EchoPipeline:
    """A cheap stand-in for FusionPipeline: the RGB luminance as the fused image."""

    def __init__(self, config):
        self.config = config
        self.device = 'cpu'
        self.calls = 0

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        self.calls += 1
        gray = visible.mean(axis=2).astype(np.uint8) if visible.ndim == 3 else visible
        prior = SemanticPrior.empty(gray.shape, 'thermal')
        return FusionResult(np.dstack([gray] * 3), gray, prior, thermal.astype(np.float32),
                            visible, gray.astype(np.float32) / 255, {'total': 1.0})

    def close(self):
        pass


def scene(seed: int = 5, size=(W, H)):
    """(thermal uint16 counts, visible bgr8, warm-target mask)."""
    ir, vis, targets = make_pair(seed, size)
    return (7000 + 60 * ir.astype(np.uint16)).astype(np.uint16), vis, targets


def make_core(overrides=None, factory=None, clock=None, threaded=False, transport=None,
              start=True):
    transport = transport or MemoryTransport(NS, 'fusion_node', roundtrip=True)
    config = load_config(overrides=overrides or {})
    kwargs = {'clock': clock} if clock is not None else {}
    core = FusionNodeCore(transport, config, name=NS + '/fusion_node', pipeline_factory=factory,
                          threaded=threaded, **kwargs)
    if start:
        core.configure()
        core.activate()
    return core, transport


def image(array, stamp, encoding=None, frame='cam'):
    return messages.image_msg(array, messages.make_header(float(stamp), frame), encoding)


def raw_image(stamp, height, width, encoding, step, data, is_bigendian=0, frame='cam'):
    """Build a sensor_msgs/Image with exactly these fields, consistent or not."""
    return messages.msg_type(messages.IMAGE)(
        header=messages.make_header(float(stamp), frame), height=int(height), width=int(width),
        encoding=encoding, is_bigendian=int(is_bigendian), step=int(step),
        data=np.frombuffer(bytes(data), np.uint8))


def big_endian_mono16(array, stamp, frame='cam'):
    array = np.ascontiguousarray(array, dtype=np.uint16)
    h, w = array.shape
    return raw_image(stamp, h, w, 'mono16', 2 * w, array.astype('>u2').tobytes(), 1, frame)


def send_pair(transport, stamp, thermal, visible, thermal_encoding='mono16', jitter=0.003):
    transport.publish('thermal/image_raw', image(thermal, stamp + jitter, thermal_encoding))
    transport.publish('rgb/image_raw', image(visible, stamp, 'bgr8'))


def balanced(core) -> dict:
    """
    Check that the books balance for every input; return the stats.

    The books: received = published + dropped + rejected + pending.
    """
    stats = core.stats()
    assert accounting_errors(stats) == [], accounting_errors(stats)
    for source, counts in stats['inputs'].items():
        total = (counts['published'] + sum(counts['dropped'].values())
                 + sum(counts['rejected'].values()) + counts['pending'])
        assert total == counts['received'], (source, counts)
    return stats


def one_line(text: str) -> str:
    assert '\n' not in text and 'Traceback' not in text, text
    return text
