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


"""The live alignment check: score, running level, the node's alignment status and its WARN."""

import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.node.diagnostics import as_dict, OK, WARN
from sgdfuse_ros.pipeline.fusion_pipeline import FusionResult
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.registration.check import alignment_score, AlignmentMonitor
from sgdfuse_ros.transport.memory import MemoryTransport

NS = '/cam'
W, H = 320, 240


@pytest.fixture(scope='module')
def scene():
    ir, vis, _ = make_pair(7, (W, H))
    return ir, vis


def test_score_falls_when_the_thermal_image_moves(scene):
    ir, vis = scene
    aligned = alignment_score(ir, vis)
    moved = alignment_score(np.roll(ir, W // 12, axis=1), vis)
    assert aligned > 0.15 and moved < 0.5 * aligned, (aligned, moved)
    valid = np.zeros((H, W), bool)
    valid[20:-20, 30:-30] = True
    assert alignment_score(ir, vis, valid) == pytest.approx(aligned, abs=0.2)
    assert alignment_score(np.zeros_like(ir), vis) is None  # nothing to compare


def test_monitor_warns_on_a_drop_and_recovers():
    monitor = AlignmentMonitor(warmup=10, recent=3)
    for k in range(10):
        monitor.add(0.3 + 0.01 * (k % 3))
    assert monitor.reference == pytest.approx(0.31, abs=0.01) and not monitor.dropped
    for _ in range(5):
        monitor.add(0.28)  # scene changes move it a little: no warning
    assert not monitor.dropped and monitor.warnings == 0
    for _ in range(3):
        monitor.add(0.05)
    assert monitor.dropped and monitor.warnings == 1
    level = monitor.reference
    for _ in range(10):
        monitor.add(0.05)
    assert monitor.dropped and monitor.reference == level  # a knocked camera keeps the warning
    for _ in range(3):
        monitor.add(0.3)
    assert not monitor.dropped and monitor.warnings == 1
    monitor.add(None)
    assert monitor.stats()['skipped'] == 1


class ShiftingPipeline:
    """Returns the registered thermal image of the scene, moved once ``knocked`` is set."""

    knocked = False

    def __init__(self, config):
        self.device = 'cpu'

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        ir = self.scene_ir
        if ShiftingPipeline.knocked:
            ir = np.roll(ir, W // 12, axis=1)
        gray = visible.mean(axis=2).astype(np.uint8)
        prior = SemanticPrior.empty(gray.shape, 'thermal')
        return FusionResult(np.dstack([gray] * 3), gray, prior, ir.astype(np.float32) / 255,
                            visible, gray.astype(np.float32) / 255, {'total': 1.0})

    def close(self):
        pass


def test_node_reports_alignment_and_warns_when_a_camera_moves(scene):
    ir, vis = scene
    ShiftingPipeline.scene_ir = ir
    ShiftingPipeline.knocked = False
    transport = MemoryTransport(NS, 'fusion_node', roundtrip=True)
    config = load_config(overrides={'diagnostics.alignment_every': 1})
    core = FusionNodeCore(transport, config, name=NS + '/fusion_node',
                          pipeline_factory=ShiftingPipeline, threaded=False)
    core.configure()
    core.activate()
    thermal16 = (7000 + 60 * ir.astype(np.uint16)).astype(np.uint16)

    def pairs(count, start):
        for k in range(count):
            stamp = start + 0.1 * k
            transport.publish('thermal/image_raw', messages.image_msg(
                thermal16, messages.make_header(stamp + 0.003, 't'), 'mono16'))
            transport.publish('rgb/image_raw', messages.image_msg(
                vis, messages.make_header(stamp, 'v'), 'bgr8'))
            assert core.process_pending()

    def status():
        return as_dict(core.diagnostics())[f'{NS.lstrip("/")}/fusion_node: alignment']

    pairs(5, 100.0)
    assert status()['level'] == OK and 'learning' in status()['message']
    pairs(20, 101.0)
    aligned = status()
    assert aligned['level'] == OK and aligned['message'].startswith('aligned')
    assert int(aligned['values']['pairs checked']) == 25
    ShiftingPipeline.knocked = True
    pairs(6, 104.0)
    knocked = status()
    assert knocked['level'] == WARN and 'a camera may have moved' in knocked['message']
    assert knocked['values']['warnings'] == '1'
    core.shutdown()


def test_alignment_check_can_be_off(scene):
    transport = MemoryTransport(NS, 'fusion_node', roundtrip=True)
    config = load_config(overrides={'diagnostics.alignment_every': 0})
    core = FusionNodeCore(transport, config, name=NS + '/fusion_node',
                          pipeline_factory=ShiftingPipeline, threaded=False)
    core.configure()
    report = as_dict(core.diagnostics())[f'{NS.lstrip("/")}/fusion_node: alignment']
    assert report['level'] == OK and report['message'].startswith('off')
    core.shutdown()
