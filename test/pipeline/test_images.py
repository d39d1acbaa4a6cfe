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

"""The images around the networks (``pipeline/images.py``): encodings, registration, colour."""

import cv2
import numpy as np
import pytest
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.pipeline.images import (merge_luma, Registration, split_luma, ThermalAGC,
                                         visible_to_bgr)


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


def _dot_image(shape, point):
    img = np.zeros(shape, np.float32)
    cv2.circle(img, point, 3, 1.0, -1)
    return img


def _centroid(img):
    ys, xs = np.nonzero(img > 0.5)
    return xs.mean(), ys.mean()


def test_homography_maps_thermal_points_into_visible_frame():
    # thermal 320x256 seen inside a 640x480 visible frame: scale 1.5 and offset (40, 30)
    H = [1.5, 0, 40, 0, 1.5, 30, 0, 0, 1]
    reg = Registration(H, output_size=(0, 0))
    thermal = _dot_image((256, 320), (100, 50))
    warped = reg.thermal(thermal, (480, 640, 3))
    assert warped.shape == (480, 640)
    x, y = _centroid(warped)
    assert abs(x - (1.5 * 100 + 40)) < 1.0 and abs(y - (1.5 * 50 + 30)) < 1.0
    valid = reg.valid_mask()
    assert valid is not None and not valid[0, 0] and valid[240, 320]


def test_homography_composes_with_output_resolution():
    H = [1.5, 0, 40, 0, 1.5, 30, 0, 0, 1]
    reg = Registration(H, output_size=(320, 240))
    warped = reg.thermal(_dot_image((256, 320), (100, 50)), (480, 640, 3))
    assert warped.shape == (240, 320)
    x, y = _centroid(warped)
    assert abs(x - (1.5 * 100 + 40) / 2) < 1.0 and abs(y - (1.5 * 50 + 30) / 2) < 1.0
    assert reg.visible(np.zeros((480, 640, 3), np.uint8)).shape == (240, 320, 3)


def test_no_homography_requires_same_size_unless_allowed():
    with pytest.raises(InputError, match='differ in size'):
        Registration(None).thermal(np.zeros((256, 320), np.float32), (480, 640, 3))
    out = Registration(None, resize_mismatched=True).thermal(
        np.zeros((256, 320), np.float32), (480, 640, 3))
    assert out.shape == (480, 640)


def test_singular_homography_rejected():
    with pytest.raises(InputError, match='singular'):
        Registration([0] * 9)


def test_colour_round_trip_keeps_visible_image():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    bgr = cv2.GaussianBlur(bgr, (5, 5), 0)  # natural images: smooth chroma
    y, chroma = split_luma(bgr)
    back, y8 = merge_luma(y, chroma)
    assert np.abs(back.astype(int) - bgr.astype(int)).max() <= 3
    # the fused luminance is what a gray conversion of the output gives back
    gray = cv2.cvtColor(back, cv2.COLOR_BGR2GRAY)
    assert np.abs(gray.astype(int) - y8.astype(int)).max() <= 2


def test_colour_of_mono_camera_is_gray():
    y, chroma = split_luma(np.full((4, 4), 128, np.uint8))
    assert chroma is None
    bgr, y8 = merge_luma(y, None)
    assert bgr.shape == (4, 4, 3) and (bgr[..., 0] == bgr[..., 2]).all() and y8[0, 0] == 128


def test_dark_visible_chroma_fades_to_neutral():
    from sgdfuse_ros.pipeline.images import attenuate_chroma
    chroma = np.full((2, 3, 2), 128, np.uint8)
    chroma[..., 0] = 170  # a strong tint everywhere
    visible_y = np.array([[0.0, 0.01, 0.11], [0.2, 0.5, 1.0]], np.float32)
    out = attenuate_chroma(chroma, visible_y)
    assert out[0, 0, 0] == 128 and out[0, 1, 0] == 128      # black: neutral
    assert 128 < out[0, 2, 0] < 170                          # dusk: faded
    assert (out[1, :, 0] == 170).all()                       # lit: untouched
    assert (out[..., 1] == 128).all()
    bright = np.full((2, 3), 0.5, np.float32)
    assert attenuate_chroma(chroma, bright) is chroma        # well-lit frame: no work
    assert attenuate_chroma(chroma, bright, bright) is chroma  # ... and nothing lifted
    assert attenuate_chroma(None, bright) is None


def test_chroma_fades_where_thermal_lifted_the_luminance():
    """
    Keep a third of the cast where the thermal camera lifted the luminance.

    A dim sodium-lit street (visible Y 0.3, yellow cast) that the thermal camera lifted to 0.9
    keeps a third of its cast; where fused and visible agree the colour is untouched; a darker
    fused pixel (thermal dimmed it) keeps its colour.
    """
    from sgdfuse_ros.pipeline.images import LIFT_EPS, attenuate_chroma
    chroma = np.full((1, 3, 2), 128, np.uint8)
    chroma[..., 1] = 88  # Cb below neutral: yellow
    visible_y = np.array([[0.3, 0.3, 0.6]], np.float32)
    fused_y = np.array([[0.9, 0.3, 0.2]], np.float32)
    out = attenuate_chroma(chroma, visible_y, fused_y).astype(int)
    expected = 128 - 40 * (0.3 + LIFT_EPS) / (0.9 + LIFT_EPS)
    assert abs(out[0, 0, 1] - expected) <= 1
    assert out[0, 1, 1] == 88 and out[0, 2, 1] == 88
    assert (out[..., 0] == 128).all()
