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
The content checks of benchmarks/registration.py on synthetic rigs with a known answer.

Registered pairs of discs (dark on grey in the visible image, bright on black in the thermal one:
contrast reversed) are rendered through a centred rig. When the pairs are truly registered, the
content optimum (the estimator's finer levels started from the truth) and the mutual-information
zoom profile must both stay at the truth; when the thermal content is 2 % larger than the
visible one (a set whose registration is off), both must find that zoom, so that the benchmark's
claim 'the images agree elsewhere than their registration' can fail.
"""

from benchmark_support import benchmark_module
import cv2
import numpy as np
import pytest
from sgdfuse_ros.registration import estimate as E
from sgdfuse_ros.registration import simulate as S

W, H = 640, 480


@pytest.fixture(scope='module')
def reg():
    with benchmark_module('registration') as module:
        yield module


def _pair(seed: int, zoom: float):
    """Return one registered (thermal, visible) uint8 pair; thermal content larger by ``zoom``."""
    rng = np.random.default_rng(seed)
    vis = np.full((H, W), 170, np.uint8)
    therm = np.zeros((H, W), np.uint8)
    for _ in range(40):
        x, y, r = int(rng.uniform(0, W)), int(rng.uniform(0, H)), int(rng.uniform(8, 40))
        cv2.circle(vis, (x, y), r, int(rng.uniform(20, 100)), -1, cv2.LINE_AA)
        cv2.circle(therm, (x, y), r, int(rng.uniform(150, 250)), -1, cv2.LINE_AA)
    # thermal pixel p shows what the visible image holds at c + (1 - zoom)(p - c)
    c = np.array([(W - 1) / 2.0, (H - 1) / 2.0])
    m = np.array([[1 - zoom, 0, zoom * c[0]], [0, 1 - zoom, zoom * c[1]]])
    therm = cv2.warpAffine(therm, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT_101)
    return therm, cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)


def _rig_frames(zoom: float):
    h = S.rig_homography((384, 288), (W, H), 0.7)
    rig = S.Rig(h, (384, 288), (W, H), 0.7, (0.0, 0.0), 0.0)
    rng = np.random.default_rng(1)
    return rig, [S.render_pair(rig, *_pair(seed, zoom), noise=1.5, rng=rng) for seed in range(4)]


@pytest.mark.parametrize('zoom', [0.0, 0.02])
def test_content_optimum_and_mutual_information_find_where_the_content_agrees(reg, zoom):
    rig, frames = _rig_frames(zoom)
    optimum = reg.content_optimum(rig, frames)
    # the thermal -> visible map must shrink the thermal view by (1 - zoom) to make it agree
    assert reg.relative_zoom(rig.homography, optimum) == pytest.approx(1 - zoom, abs=0.002)
    assert reg.mutual_information_zoom(rig, frames) == pytest.approx(1 - zoom, abs=0.003)
    expected = reg.zoom_error(rig, 1 - zoom)
    error = S.corner_error(rig.homography, optimum, rig.thermal_size)
    assert error == pytest.approx(expected, abs=0.6)
    if zoom:
        assert error > 3.0   # a 2 % zoom of a 70 % field is several pixels at the corners


def test_refine_fine_is_the_estimators_last_steps(reg):
    """The estimate of a rig lands where refine_fine started from the truth does."""
    rig, frames = _rig_frames(0.0)
    est = E.estimate([f[0] for f in frames], [f[1] for f in frames], refuse=False)
    optimum = reg.content_optimum(rig, frames)
    assert S.corner_error(optimum, est.homography, rig.thermal_size) < 0.3
    assert S.corner_error(rig.homography, est.homography, rig.thermal_size) < 0.6
