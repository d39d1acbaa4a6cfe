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
The content model of benchmarks/registration_data.py on synthetic pairs with a known answer.

Discs drawn in the visible image; the thermal image shows them with the contrast reversed, its
content moved by a known zoom, radial term and shift (or the discs grown by a known halo); the
fit must give those numbers back, and the corrected thermal image must fit the identity.
"""

from benchmark_support import benchmark_module
import cv2
import numpy as np
import pytest

W, H = 320, 240


@pytest.fixture(scope='module')
def rd():
    with benchmark_module('registration_data') as module:
        yield module


def _discs(seed: int, grow: float = 0.0):
    """Return (visible, warm thermal) of one scene: dark discs on grey, bright discs on black."""
    rng = np.random.default_rng(seed)
    vis = np.full((H * 4, W * 4), 0.7, np.float32)
    therm = np.zeros((H * 4, W * 4), np.float32)
    for _ in range(30):
        x, y = rng.uniform(0, W * 4), rng.uniform(0, H * 4)
        r = rng.uniform(16, 64)
        cv2.circle(vis, (int(x), int(y)), int(r), float(rng.uniform(0.1, 0.4)), -1)
        cv2.circle(therm, (int(x), int(y)), int(r + 4 * grow), float(rng.uniform(0.6, 1.0)), -1)
    shrink = (W, H)
    return (cv2.resize(vis, shrink, interpolation=cv2.INTER_AREA),
            cv2.resize(therm, shrink, interpolation=cv2.INTER_AREA))


def _move(image, zoom, radial, shift):
    """Return the thermal camera's view: its pixel p shows what the visible image has at f(p)."""
    c = np.array([(W - 1) / 2.0, (H - 1) / 2.0])
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    p = np.stack([xs, ys], -1)
    r2 = ((p - c) ** 2).sum(-1, keepdims=True) / (W / 2.0) ** 2
    q = c + (1.0 - zoom - radial * r2) * (p - c) + np.array(shift)
    return cv2.remap(image, q[..., 0].astype(np.float32), q[..., 1].astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def test_recovers_zoom_radial_and_shift_then_correction_undoes_them(rd):
    truth = {'zoom': 0.03, 'radial': -0.02, 'shift': [1.5, -1.0]}
    pairs = [_discs(seed) for seed in range(4)]
    vis = [v for v, _ in pairs]
    therm = [_move(t, truth['zoom'], truth['radial'], truth['shift']) for _, t in pairs]
    fit = rd.fit_content_model(therm, vis, sigma=1.0, halo=True, radial=True)
    assert fit['zoom'] == pytest.approx(truth['zoom'], abs=0.004)
    assert fit['radial'] == pytest.approx(truth['radial'], abs=0.006)
    assert fit['shift'] == pytest.approx(truth['shift'], abs=0.3)
    assert abs(fit['halo']) < 0.3
    # zoom and shift alone cannot describe it: the central part gives a larger zoom than the whole
    whole = rd.fit_content_model(therm, vis, sigma=1.0)
    centre = rd.fit_content_model(therm, vis, sigma=1.0, crop=0.7)
    assert centre['zoom'] > whole['zoom'] + 0.003
    corrected = [rd.correct_thermal(t, fit) for t in therm]
    again = rd.fit_content_model(corrected, vis, sigma=1.0, halo=True, radial=True)
    assert abs(again['zoom']) < 0.002 and abs(again['radial']) < 0.004
    assert np.abs(again['shift']).max() < 0.2


def test_a_halo_is_told_apart_from_a_zoom(rd):
    pairs = [_discs(seed, grow=1.5) for seed in range(4)]
    vis = [v for v, _ in pairs]
    therm = [t for _, t in pairs]
    fit = rd.fit_content_model(therm, vis, sigma=1.0, halo=True)
    assert fit['halo'] == pytest.approx(1.5, abs=0.4)   # towards the colder side: warm discs grow
    assert abs(fit['zoom']) < 0.003
    plain = rd.fit_content_model([v.copy() for v in vis], vis, sigma=1.0, halo=True, radial=True)
    assert abs(plain['zoom']) < 0.001 and abs(plain['halo']) < 0.1 and plain['points'] > 1000
