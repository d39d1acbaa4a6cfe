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

"""semantic/detections from the node: the pair's stamp and frame, one id per target, kept."""

from node_support import FakePipeline, listen, make_core, send_pair
import numpy as np
from sgdfuse_ros import messages
from sgdfuse_ros.prior.format import SemanticPrior


class ThermalScalePipeline(FakePipeline):
    """The fake pipeline, with the thermal image handed on in [0, 1] as the real one does."""

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        result = super().process(thermal, visible, thermal_encoding, visible_encoding)
        result.thermal = thermal.astype(np.float32) / 255.0
        return result


def walking_person(step):
    """Return the pair of frame ``step``: a warm person (6 x 16 pixels) walking right."""
    h, w = 64, 96
    thermal = np.full((h, w), 70, np.uint8)
    thermal[28:44, 20 + 2 * step:26 + 2 * step] = 190
    visible = np.full((h, w, 3), 90, np.uint8)
    return thermal, visible, (20 + 2 * step, 28, 26 + 2 * step, 44)


def test_detections_carry_the_stamp_and_keep_the_id_of_a_moving_target():
    core, t = make_core(factory=ThermalScalePipeline)
    core.configure()
    assert t.publishers['/cam/semantic/detections'][0].typename == messages.DETECTION_ARRAY
    core.activate()
    listen(t, 'semantic/detections', 'semantic/targets')
    ids = []
    for step in range(4):
        thermal, visible, drawn = walking_person(step)
        t.publish('thermal/image_raw', messages.image_msg(
            thermal, messages.make_header(5.0 + 0.1 * step + 0.002, 'thermal_optical'), 'mono8'))
        t.publish('rgb/image_raw', messages.image_msg(
            visible, messages.make_header(5.0 + 0.1 * step, 'rgb_optical'), 'bgr8'))
        assert core.process_pending()
        msg = t.sent('semantic/detections')[-1]
        assert messages.stamp_nanoseconds(msg) == 5_000_000_000 + step * 100_000_000
        assert msg.header.frame_id == 'rgb_optical'
        assert len(msg.detections) == 1
        detection = msg.detections[0]
        assert messages.stamp_nanoseconds(detection) == messages.stamp_nanoseconds(msg)
        centre = detection.bbox.center.position
        assert abs(centre.x - (drawn[0] + drawn[2]) / 2) <= 1.0
        assert abs(centre.y - (drawn[1] + drawn[3]) / 2) <= 1.0
        assert detection.results[0].hypothesis.class_id == 'warm_target'
        assert 0.0 < detection.results[0].hypothesis.score <= 1.0
        ids.append(detection.id)
        targets, _ = messages.image_from_msg(t.sent('semantic/targets')[-1])
        x0, y0, x1, y1 = drawn
        assert targets[y0:y1, x0:x1].min() >= 64  # the map and the box agree
    assert ids == ['1'] * 4
    core.deactivate()
    core.activate()  # a new activation tracks afresh
    thermal, visible, _ = walking_person(0)
    t.publish('thermal/image_raw', messages.image_msg(
        thermal, messages.make_header(9.002, 'thermal_optical'), 'mono8'))
    t.publish('rgb/image_raw', messages.image_msg(
        visible, messages.make_header(9.0, 'rgb_optical'), 'bgr8'))
    assert core.process_pending()
    assert [d.id for d in t.sent('semantic/detections')[-1].detections] == ['1']
    core.shutdown()


class NoPriorPipeline(ThermalScalePipeline):
    """What ``prior.source: none`` hands on: an empty prior of source 'none'."""

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        result = super().process(thermal, visible, thermal_encoding, visible_encoding)
        result.prior = SemanticPrior.empty(result.fused_y.shape, 'none')
        return result


def test_no_prior_means_no_targets(scene):
    core, t = make_core({'prior.source': 'none'}, factory=NoPriorPipeline)
    core.configure()
    core.activate()
    listen(t, 'semantic/detections', 'semantic/targets')
    send_pair(t, scene, 3.0)
    assert core.process_pending()
    assert t.sent('semantic/detections')[-1].detections == []
    targets, _ = messages.image_from_msg(t.sent('semantic/targets')[-1])
    assert not targets.any()
    core.shutdown()


def send_step(core, t, step, stamp):
    thermal, visible, _ = walking_person(step)
    t.publish('thermal/image_raw', messages.image_msg(
        thermal, messages.make_header(stamp + 0.002, 'thermal_optical'), 'mono8'))
    t.publish('rgb/image_raw', messages.image_msg(
        visible, messages.make_header(stamp, 'rgb_optical'), 'bgr8'))
    assert core.process_pending()


def test_targets_are_selected_only_while_someone_subscribes():
    core, t = make_core(factory=ThermalScalePipeline)
    core.configure()
    core.activate()
    selections = []
    selector = core._semantic.selector
    core._semantic.selector = lambda thermal: selections.append(1) or selector(thermal)
    send_step(core, t, 0, 5.0)  # nobody reads the targets: not selected, not sent
    assert selections == [] and t.sent('semantic/detections') == []
    assert t.sent('semantic/targets') == [] and len(t.sent('fused/image')) == 1
    heard = listen(t, 'semantic/detections')  # a detections reader alone wants them
    send_step(core, t, 1, 5.1)
    send_step(core, t, 2, 5.2)
    assert len(selections) == 2
    assert [[d.id for d in m.detections] for m in heard['semantic/detections']] == [['1'], ['1']]
    assert len(t.sent('semantic/targets')) == 2  # both published together
    for subscription in t.subscriptions['/cam/semantic/detections']:
        subscription.close()  # the reader leaves: the tracks end, the ids go on
    send_step(core, t, 3, 5.3)
    assert len(selections) == 2
    listen(t, 'semantic/targets')
    send_step(core, t, 4, 5.4)
    assert len(selections) == 3
    assert [d.id for d in t.sent('semantic/detections')[-1].detections] == ['2']
    core.shutdown()
