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

"""Published warm targets: scored compact warm objects, and the tracker keeping their ids."""

import numpy as np
import pytest
from sgdfuse_ros.eval.target_boxes import (grown_boxes_mask, recall_precision, target_counts,
                                           TARGET_LEVEL)
from sgdfuse_ros.prior.targets import box_iou, draw_detections, TargetSelector, TargetTracker
from sgdfuse_ros.prior.thermal import ThermalPrior


def street(width, height, seed=0):
    """Return a cool street with a sunlit wall at the top, a person and a car, and their boxes."""
    rng = np.random.default_rng(seed)
    thermal = (0.3 + 0.02 * rng.standard_normal((height, width))).astype(np.float32)
    sx, sy = width / 128.0, height / 128.0

    def box(x0, y0, x1, y1):
        return int(x0 * sx), int(y0 * sy), int(x1 * sx), int(y1 * sy)
    wall, person, car = box(50, 0, 110, 40), box(20, 60, 26, 76), box(80, 70, 100, 80)
    for (x0, y0, x1, y1), level in ((wall, 0.5), (person, 0.75), (car, 0.7)):
        thermal[y0:y1, x0:x1] = level
    return thermal, wall, person, car


@pytest.mark.parametrize('size', [(128, 128), (640, 512), (1280, 1024)])
def test_compact_warm_objects_are_targets_and_the_sunlit_wall_is_not(size):
    thermal, wall, person, car = street(*size)
    found = TargetSelector()(thermal)
    boxes = sorted(t.box for t in found.boxes)
    assert len(boxes) == 2
    for got, drawn in zip(boxes, sorted([person, car])):
        # the box of the smoothed blob: the drawn one, a few pixels of blur around it
        assert box_iou(got, drawn) > 0.6, (got, drawn)
        assert got[0] <= drawn[0] and got[1] <= drawn[1] and got[2] >= drawn[2] and \
            got[3] >= drawn[3], (got, drawn)
    assert all(0.0 < t.score <= 1.0 for t in found.boxes)
    x0, y0, x1, y1 = wall
    assert found.targets[y0:y1, x0:x1].max() == 0.0  # the wall is no target ...
    assert ThermalPrior()(thermal).targets[y0:y1, x0:x1].max() > 0.5  # ... the prior marks it
    px0, py0, px1, py1 = person
    assert found.targets_u8()[py0:py1, px0:px1].min() >= TARGET_LEVEL
    # every candidate, the wall included, when nothing is left out
    assert len(TargetSelector(min_score=0.0)(thermal).boxes) == 3


def test_detections_are_drawn_at_the_size_they_are_shown():
    thermal, _, person, _ = street(640, 512)
    found = TargetSelector()(thermal)
    gray = np.zeros((512, 640), np.uint8)
    drawn = draw_detections(gray, found.boxes, [7, 8], height=256)
    assert drawn.shape == (256, 320, 3) and not gray.any()  # a new image, the input untouched
    x0, y0, x1, y1 = (v // 2 for v in found.boxes[1].box)  # the person, at half size
    green = (drawn[..., 1] > 200) & (drawn[..., 0] < 50) & (drawn[..., 2] < 50)
    assert green[y0:y1, x0].all() or green[y0:y1, x0 + 1].all()  # its left edge
    assert not green[215:].any()  # nothing below the targets


def test_a_flat_frame_has_no_targets():
    found = TargetSelector()(np.full((64, 80), 0.4, np.float32))
    assert found.boxes == [] and not found.targets.any()


def test_tracker_keeps_ids_while_targets_move_and_hide_briefly():
    tracker = TargetTracker(max_missed=2)
    assert tracker.update([(10, 10, 20, 30), (50, 50, 70, 60)]) == [1, 2]
    # both move (the small one by more than it overlaps: matched by centre distance), order swapped
    assert tracker.update([(54, 50, 74, 60), (16, 12, 26, 32)]) == [2, 1]
    assert tracker.update([(55, 51, 75, 61)]) == [2]   # 1 hidden for a frame
    assert tracker.update([(18, 12, 28, 32), (55, 51, 75, 61), (100, 5, 110, 9)]) == [1, 2, 3]
    for _ in range(3):                                   # 1 gone for longer than max_missed
        tracker.update([(55, 51, 75, 61)])
    assert tracker.update([(18, 12, 28, 32)]) == [4]    # a new track: ids are never reused
    tracker.reset()
    assert tracker.update([(18, 12, 28, 32)]) == [1]


def test_tracker_gives_a_far_jump_a_new_id():
    tracker = TargetTracker()
    assert tracker.update([(0, 0, 10, 10)]) == [1]
    assert tracker.update([(40, 40, 50, 50)]) == [2]


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_recall_and_precision_counts():
    shape = (40, 40)
    inside = np.zeros(shape, bool)
    inside[10:20, 10:14] = True                        # one warm box, 10 x 4
    warm = [{'inside': inside}]
    grown = grown_boxes_mask([(0, 10, 10, 14, 20)], shape)
    assert grown[9:21, 10:14].all() and not grown[5, 5]  # grown by 25 % about the centre
    target = np.zeros(shape, bool)
    target[10:13, 10:14] = True                        # 30 % of the box
    target[30:32, 30:32] = True                        # 4 pixels of background
    counts = target_counts(target, warm, grown)
    assert counts == {'warm': 1, 'found': 1, 'pixels': 16, 'inside': 12}
    target[12, :] = False
    assert target_counts(target, warm, grown)['found'] == 0  # 20 % is not enough
    summary = recall_precision({'00001D': counts, '00002N': target_counts(target, warm, grown)})
    assert summary['day']['recall'] == 1.0 and summary['night']['recall'] == 0.0
    assert summary['day']['precision'] == pytest.approx(12 / 16)
    assert summary['all']['warm'] == 2
