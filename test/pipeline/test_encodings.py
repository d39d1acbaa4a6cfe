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

import numpy as np
import pytest
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.pipeline.encodings import ThermalAGC, visible_to_bgr


def test_mono8_passes_through_in_auto_mode():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = ThermalAGC()(img, 'mono8')
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, img / 255.0, atol=1e-7)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
def test_16bit_percentile_window(encoding):
    rng = np.random.default_rng(0)
    raw = (7000 + 400 * rng.random((64, 80))).astype(np.uint16)
    raw[0, 0] = 65000  # a dead-hot pixel must not compress the whole range
    out = ThermalAGC(low=1, high=99)(raw, encoding)
    assert out.min() == 0.0 and out.max() == 1.0
    # the bulk of the scene spans the output, not a sliver of it
    assert np.percentile(out, 90) - np.percentile(out, 10) > 0.6


def test_32fc1_with_nan_and_inf_is_safe():
    img = np.linspace(20, 40, 64 * 64, dtype=np.float32).reshape(64, 64)
    img[3, :] = np.nan
    img[5, 5] = np.inf
    img[6, 6] = -np.inf
    out = ThermalAGC()(img, '32FC1')
    assert np.isfinite(out).all()
    assert out[3].max() == 0.0          # NaN -> coldest
    assert out[5, 5] == 1.0 and out[6, 6] == 0.0


def test_all_nan_frame_is_rejected():
    with pytest.raises(InputError, match='no finite pixels'):
        ThermalAGC()(np.full((8, 8), np.nan, np.float32), '32FC1')


@pytest.mark.parametrize('value', [0, 9000, 65535])
def test_constant_frame_maps_to_mid_grey(value):
    out = ThermalAGC(min_span=16)(np.full((32, 32), value, np.uint16), 'mono16')
    np.testing.assert_allclose(out, 0.5)
    assert np.isfinite(out).all()


def test_min_span_keeps_noise_from_being_amplified():
    rng = np.random.default_rng(1)
    flat = (8000 + rng.integers(0, 3, (64, 64))).astype(np.uint16)
    out = ThermalAGC(min_span=64)(flat, 'mono16')
    assert out.max() - out.min() < 0.1


def test_temporal_smoothing_moves_window_gradually():
    agc = ThermalAGC(smoothing=0.9, low=0, high=100, min_span=0)
    agc(np.array([[0, 100]], np.uint16).repeat(4, 0), 'mono16')
    lo, hi = agc.window(np.array([[1000, 1100]], np.uint16).repeat(4, 0))
    assert 0 < lo < 200 and hi < 300


def test_unknown_encoding_rejected():
    with pytest.raises(InputError, match='unsupported thermal encoding'):
        ThermalAGC()(np.zeros((4, 4), np.uint8), 'yuv422')


def test_visible_encodings():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 200  # blue
    out, colour = visible_to_bgr(bgr[..., ::-1].copy(), 'rgb8')
    assert colour and out[0, 0, 0] == 200 and out[0, 0, 2] == 0
    gray, colour = visible_to_bgr(np.zeros((2, 3), np.uint8), 'mono8')
    assert not colour and gray.ndim == 2
    with pytest.raises(InputError):
        visible_to_bgr(np.zeros((2, 3), np.uint8), 'bgr8')
