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
The warm tint (``colour.warm_tint``): warm objects turn red, nothing else changes.

A warm person on a cool background is tinted, the background keeps the visible colours, the
gray of the BGR image (what the image metrics score) stays the fused luminance even for white
and black warm pixels, the thermal camera's blind border gets no tint, a gray visible camera
gets a tint too, and the tint follows the frame size (sigma at 640 wide).
"""

import cv2
import numpy as np
import pytest
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.metrics import to_gray
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.pipeline.images import merge_luma, split_luma
from sgdfuse_ros.pipeline.warm_tint import WarmTint


def _scene(h=120, w=160, person=200):
    """Return a cool thermal background with a warm person and a textured colour image."""
    thermal = np.full((h, w), 0.3, np.float32)
    thermal[h // 3:h // 3 + h // 4, w // 2:w // 2 + w // 16] = person / 255.0
    rng = np.random.default_rng(0)
    visible = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
    visible = cv2.GaussianBlur(visible, (0, 0), 1.5)
    return thermal, visible


def _person(h=120, w=160):
    box = np.zeros((h, w), bool)
    box[h // 3:h // 3 + h // 4, w // 2:w // 2 + w // 16] = True
    return box


def test_the_warm_person_turns_red_and_the_background_keeps_its_colours():
    thermal, visible = _scene()
    fused_y, chroma = split_luma(visible)
    tinted = WarmTint(80.0, 40.0)(chroma, thermal, fused_y)
    person = _person()
    far = np.zeros_like(person)
    far[:, :20] = True  # far from the person: the local warmth is 0 there
    d_cr = tinted[..., 0].astype(int) - chroma[..., 0]
    d_cb = tinted[..., 1].astype(int) - chroma[..., 1]
    assert np.median(d_cr[person]) > 40 and np.median(d_cb[person]) < -20
    assert np.abs(d_cr[far]).max() == 0 and np.abs(d_cb[far]).max() == 0
    bgr, _ = merge_luma(fused_y, tinted)
    before, _ = merge_luma(fused_y, chroma)
    # redder: R up, B down on the person
    assert (bgr[..., 2].astype(int) - before[..., 2])[person].mean() > 30
    assert (bgr[..., 0].astype(int) - before[..., 0])[person].mean() < -20


@pytest.mark.parametrize('level', [3, 30, 128, 230, 252])
def test_the_gray_the_metrics_score_stays_the_fused_luminance(level):
    thermal, visible = _scene()
    _, chroma = split_luma(visible)
    fused_y = np.full(thermal.shape, level / 255.0, np.float32)  # also near black / white
    tinted = WarmTint(127.0, 40.0)(chroma, thermal, fused_y)
    bgr, y8 = merge_luma(fused_y, tinted)
    error = np.abs(to_gray(bgr) - y8)
    untinted, _ = merge_luma(fused_y, chroma)
    before = np.abs(to_gray(untinted) - y8)
    # wherever the visible colours alone kept the luminance (near white and black they clip
    # themselves), the tinted pixel keeps it too; a tint that clipped would miss by up to ~90
    assert error[before <= 1].max() <= 1.0
    assert (error > before + 1).sum() == 0
    assert WarmTint(127.0, 40.0).warmth(thermal)[_person()].mean() > 0.8  # there was a tint


def test_no_tint_where_the_thermal_camera_sees_nothing_and_on_a_gray_camera():
    thermal, visible = _scene()
    fused_y = split_luma(visible)[0]
    valid = np.ones(thermal.shape, np.float32)
    valid[:, 80:] = 0.0  # the person stands at x = 80..90: outside the thermal view
    tinted = WarmTint(80.0, 40.0)(None, thermal, fused_y, valid)
    person = _person()
    assert (tinted[..., 0][person] == 128).all() and (tinted[..., 1][person] == 128).all()
    seen = WarmTint(80.0, 40.0)(None, thermal, fused_y)
    assert np.median(seen[..., 0][person]) > 128 + 40  # a gray visible camera: tinted too


def test_the_tint_follows_the_frame_size():
    small, _ = _scene(120, 160)
    large = cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST)
    tint = WarmTint(80.0, 40.0)
    w_small = tint.warmth(small)
    w_large = cv2.resize(tint.warmth(large), (160, 120), interpolation=cv2.INTER_AREA)
    assert np.abs(w_small - w_large).mean() < 0.03
    assert w_small[_person()].mean() > 0.8


def test_the_pipeline_tints_by_default_and_zero_turns_it_off():
    thermal, visible = _scene()
    thermal_u8 = (thermal * 255).astype(np.uint8)
    person = _person()
    outs = {}
    for strength in (None, 0.0):
        overrides = {'first_stage.type': 'laplacian', 'refiner.steps': 0, 'threads': 1,
                     'prior.source': 'thermal'}
        if strength is not None:
            overrides['colour.warm_tint'] = strength
        pipeline = FusionPipeline(load_config(None, overrides))
        assert pipeline.tint.active == (strength is None)
        outs[strength] = pipeline.process(thermal_u8, visible)
    on, off = outs[None], outs[0.0]
    np.testing.assert_array_equal(on.fused_y, off.fused_y)  # the luminance is the same
    redder = on.fused_bgr[..., 2].astype(int) - off.fused_bgr[..., 2]
    assert redder[person].mean() > 20
    assert np.abs(to_gray(on.fused_bgr) - on.fused_y).max() <= 1.0
