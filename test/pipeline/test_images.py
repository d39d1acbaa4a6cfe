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
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.pipeline.images import (merge_luma, QuietBackground, Registration, smooth,
                                         split_luma, ThermalAGC, visible_to_bgr)


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


# --- quiet background (background.*) -------------------------------------------------------------

def _quiet_scene(size=(96, 128)):
    """Return a textured visible-led fused image, a smooth thermal one, a warm 6x6 target."""
    rng = np.random.default_rng(1)
    h, w = size
    texture = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 0.7)
    fused = 0.35 + 0.5 * (texture - texture.mean())
    thermal = np.full((h, w), 0.3, np.float32) + 0.02 * np.linspace(0, 1, w, dtype=np.float32)
    targets = np.zeros((h, w), np.float32)
    targets[40:46, 60:66] = 1.0
    thermal[40:46, 60:66] = 0.9
    fused[40:46, 60:66] = 0.9
    return np.clip(fused, 0, 1).astype(np.float32), thermal, targets


def _gradient(image, mask):
    g = np.hypot(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1))
    return float(g[mask].mean())


def test_quiet_background_off_returns_the_fused_image_itself():
    fused, thermal, targets = _quiet_scene()
    quiet = QuietBackground()  # the defaults: both steps off
    assert not quiet.active
    assert quiet(fused, thermal, targets) is fused


def test_quiet_ring_follows_thermal_around_targets_and_leaves_the_rest():
    fused, thermal, targets = _quiet_scene()
    out = QuietBackground(radius=20)(fused, thermal, targets)  # 4 px at 128 wide
    assert out.shape == fused.shape and out.dtype == np.float32
    ring = np.zeros(targets.shape, bool)
    ring[37:49, 57:69] = True
    ring[39:47, 59:67] = False  # a pixel off the target (the Sobel sees its edge)
    # around the target: the thermal image's quiet surroundings, not the visible texture
    assert _gradient(out, ring) < 0.3 * _gradient(fused, ring)
    assert np.median(np.abs(out[ring] - thermal[ring])) < 0.01
    # the target keeps its thermal contrast against that ring
    assert out[40:46, 60:66].mean() - out[ring].mean() > 0.55
    # far from the target nothing changed
    np.testing.assert_array_equal(out[:20], fused[:20])


def test_quiet_detail_replaces_fine_visible_detail_by_thermal_detail():
    fused, thermal, targets = _quiet_scene()
    away = np.ones(targets.shape, bool)
    away[30:56, 50:76] = False
    out = QuietBackground(detail_gain=0.0, detail_sigma=8.0)(fused, thermal, None)
    half = QuietBackground(detail_gain=0.5, detail_sigma=8.0)(fused, thermal, None)
    g_in, g_half, g_out = (_gradient(x, away) for x in (fused, half, out))
    assert g_out < 0.5 * g_in and g_out < g_half < g_in
    # brightness kept (the blurred image), the warm target's contrast kept
    assert abs(float(out[away].mean()) - float(fused[away].mean())) < 0.02
    assert out[41:45, 61:65].mean() - out[away].mean() > 0.4


def test_quiet_background_in_the_pipeline_off_is_bit_identical_and_on_keeps_colour():
    base = {'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}
    ir, vis, warm = make_pair(5, (160, 128))
    with FusionPipeline(load_config(overrides=base)) as p:
        before = p.process(ir, vis)
    with FusionPipeline(load_config(overrides=dict(base, **{
            'background.target_radius': 0.0, 'background.detail_gain': 1.0}))) as p:
        off = p.process(ir, vis)
    np.testing.assert_array_equal(off.fused_bgr, before.fused_bgr)
    with FusionPipeline(load_config(overrides=dict(base, **{
            'background.target_radius': 20.0, 'background.detail_gain': 0.0}))) as p:
        on = p.process(ir, vis)
    assert on.fused_bgr.shape == before.fused_bgr.shape and on.fused_bgr.dtype == np.uint8
    # colour kept: the chroma of the output is the visible chroma where it was before
    chroma_on = cv2.cvtColor(on.fused_bgr, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(int)
    chroma_before = cv2.cvtColor(before.fused_bgr, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(int)
    assert np.abs(chroma_on - 128).mean() > 0.5 * np.abs(chroma_before - 128).mean() > 0
    away = cv2.dilate(warm.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    assert _gradient(on.fused_y.astype(np.float32), away) < \
        0.8 * _gradient(before.fused_y.astype(np.float32), away)


def test_smooth_is_a_gaussian_blur_also_for_wide_sigmas():
    rng = np.random.default_rng(2)
    image = cv2.GaussianBlur(rng.random((200, 260)).astype(np.float32), (0, 0), 2.0)
    np.testing.assert_array_equal(smooth(image, 3.0), cv2.GaussianBlur(image, (0, 0), 3.0))
    for sigma in (8.0, 16.0, 32.0):
        exact = cv2.GaussianBlur(image, (0, 0), sigma)
        fast = smooth(image, sigma)
        assert fast.shape == image.shape and fast.dtype == np.float32
        assert np.abs(fast - exact).max() < 0.005, sigma
        # and it does blur: the fine noise is gone
        assert fast.std() < 0.5 * image.std()
