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
The shipped weights on real daylight frames.

RoadScene validation pairs, never the test split: the daylight sky follows the visible camera, and
warm targets still stand out as in the thermal image. Guards against a retraining that brings back
the thermal sky clutter.
"""

import cv2
import numpy as np
import pytest
from sgdfuse_ros.config import load_config
from sgdfuse_ros.eval.datasets import read_pair
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.training.data import validation_pairs
from sgdfuse_ros.training.losses import visible_lead_map
import torch

# held-out TRAIN pairs with a large daylight sky (see models/README.md)
DAYLIGHT = ('FLIR_00311', 'FLIR_01463', 'FLIR_04968')


def _detail(gray):
    return gray - cv2.GaussianBlur(gray, (5, 5), 0)


def fuse_daylight(roadscene, **overrides):
    pairs = [p for p in validation_pairs(roadscene) if p.name in DAYLIGHT]  # never test pairs
    assert len(pairs) == len(DAYLIGHT)
    torch.set_num_threads(1)  # 128x128 frames: one thread is faster on a shared CPU
    config = load_config(overrides={'output.width': 0, 'output.height': 0,
                                    'prior.every_frame': True, **overrides})
    out = []
    with FusionPipeline(config) as pipeline:
        for pair in pairs:
            thermal, visible = read_pair(pair)
            result = pipeline.process(thermal, visible)
            ir = thermal.astype(np.float32) / 255.0
            vis_y = cv2.cvtColor(visible, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
            out.append((pair.name, ir, vis_y, result))
    assert len(out) == len(DAYLIGHT)
    return out


@pytest.fixture(scope='module')
def fused_daylight(roadscene):
    return fuse_daylight(roadscene)


def test_daylight_sky_follows_the_visible_camera(fused_daylight):
    for name, ir, vis, result in fused_daylight:
        t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
        sky = visible_lead_map(t(ir), t(vis))[0, 0].numpy() > 0.5
        assert sky.mean() > 0.2, name
        fused = cv2.cvtColor(result.fused_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        level = fused[sky].mean() - vis[sky].mean()
        texture = np.abs(_detail(fused)[sky]).mean() / np.abs(_detail(vis)[sky]).mean()
        thermal_texture = np.abs(_detail(ir)[sky]).mean() / np.abs(_detail(vis)[sky]).mean()
        # session 1's weights: about -0.5 and 2.9x here (the thermal camera's dark, noisy sky)
        assert level > -0.25, (name, level)
        assert texture < 1.6 and texture < thermal_texture, (name, texture, thermal_texture)


def test_warm_targets_still_stand_out_in_daylight(fused_daylight):
    """
    Warm targets keep their thermal level and stand out from their surround.

    The surround excludes the sky, which is meant to change.
    """
    checked = 0
    for name, ir, vis, result in fused_daylight:
        targets = result.prior.targets > 0.5
        if targets.mean() < 0.002:
            continue
        t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
        sky = visible_lead_map(t(ir), t(vis))[0, 0].numpy() > 0.5
        ring = cv2.dilate(targets.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
        ring &= ~targets & ~sky
        fused = result.fused_y.astype(np.float32) / 255.0
        thermal_contrast = ir[targets].mean() - ir[ring].mean()
        fused_contrast = fused[targets].mean() - fused[ring].mean()
        error = np.abs(fused[targets] - ir[targets]).mean()
        assert fused_contrast > 0.5 * thermal_contrast > 0, (name, fused_contrast,
                                                             thermal_contrast)
        assert error < 0.12, (name, error)
        checked += 1
    assert checked >= 2


# --------------------------------------------------------------------------------------------
# Warm targets on another camera (MSRS held-out TRAIN pairs), measured with the human boxes
# --------------------------------------------------------------------------------------------

# all 108 held-out MSRS train pairs (368 warm boxes; never the test split): a smaller subset
# holds too few night boxes for a stable median (the first 40 pairs: 15)


@pytest.fixture(scope='module')
def msrs_boxes(roadscene):
    from sgdfuse_ros.eval.target_boxes import load_boxed
    from sgdfuse_ros.training.data import VAL_EVERY
    msrs = roadscene.parent / 'msrs128'
    if not (msrs / 'labels' / 'infrared' / 'train').is_dir():
        pytest.skip('MSRS data (msrs128 with labels) not found beside RoadScene')
    out = load_boxed(validation_pairs(msrs, VAL_EVERY['msrs']), msrs, 'train')
    assert sum(len(item[4]) for item in out) >= 300
    return out


def box_medians(items, prior_mode='pipeline', **overrides):
    from sgdfuse_ros.eval.target_boxes import fused_ratios, summarise
    config = load_config(overrides={'output.width': 0, 'output.height': 0,
                                    'prior.every_frame': True, **overrides})
    with FusionPipeline(config) as pipeline:
        ratios = fused_ratios(pipeline, items, prior_mode)
    return {k: v['median'] for k, v in summarise(ratios).items()}


@pytest.fixture(scope='module')
def msrs_medians(msrs_boxes):
    return {'thermal prior': box_medians(msrs_boxes),
            'no prior': box_medians(msrs_boxes, **{'prior.source': 'none'}),
            'SAM-like': box_medians(msrs_boxes, 'boxes')}


def test_the_prior_keeps_warm_labelled_targets(msrs_medians):
    with_prior, without = msrs_medians['thermal prior'], msrs_medians['no prior']
    # previous (RoadScene-only) weights here: 0.839 with prior (night 0.941, day 0.621), 0.824
    # without (benchmarks/results/target_contrast_val_b.md)
    assert with_prior['all'] >= without['all'] + 0.05, msrs_medians
    assert with_prior['night'] >= 0.95 and with_prior['day'] >= 0.8, msrs_medians


def test_sam_like_masks_keep_targets_at_least_as_well_as_the_fallback(msrs_medians):
    """Masks drawn from the labelled boxes, in the SAM path's format (``source: sam``)."""
    assert msrs_medians['SAM-like']['all'] >= msrs_medians['thermal prior']['all'], msrs_medians


# --------------------------------------------------------------------------------------------
# The first stage tuned for detectors (first_stage.tuned_for: detectors)
# --------------------------------------------------------------------------------------------

def background_and_targets(items, tuned_for):
    """
    Background texture and warm-target contrast with the shipped weights of ``tuned_for``.

    Returns the mean Sobel magnitude of the fused gray outside the labelled boxes (day, night)
    and the medians of the warm boxes' contrast ratios (all, night, day).
    """
    from sgdfuse_ros.eval.target_boxes import contrast_ratios, summarise, to_gray
    config = load_config(overrides={'output.width': 0, 'output.height': 0,
                                    'prior.every_frame': True,
                                    'first_stage.tuned_for': tuned_for})
    texture = {'day': [], 'night': []}
    ratios = {}
    with FusionPipeline(config) as pipeline:
        for pair, thermal, visible, boxes, warm in items:
            gray = to_gray(pipeline.process(thermal, visible).fused_bgr)
            ratios[pair.name] = contrast_ratios(gray, warm)
            g = gray.astype(np.float32)
            magnitude = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
            away = np.ones(g.shape, bool)
            for _, x0, y0, x1, y1 in boxes:
                away[y0:y1, x0:x1] = False
            texture['night' if pair.name.endswith('N') else 'day'].append(magnitude[away].mean())
    return ({k: float(np.mean(v)) for k, v in texture.items()},
            {k: v['median'] for k, v in summarise(ratios).items()})


def test_detector_tuned_weights_quiet_the_background_and_keep_the_warm_targets(msrs_boxes):
    """
    What the detector-tuned first stage learned (models/README.md, "Tuned for detectors").

    Less background texture for a detector to reject, by day and by night (measured: 0.67x and
    0.72x of the image-tuned weights' on these pairs), and the warm labelled targets standing out
    as much as before (median contrast ratio 0.98 vs 0.96). Fails for the image-tuned file.
    """
    images_texture, images_targets = background_and_targets(msrs_boxes, 'images')
    texture, targets = background_and_targets(msrs_boxes, 'detectors')
    for period in ('day', 'night'):
        assert texture[period] < 0.8 * images_texture[period], (period, texture, images_texture)
    assert targets['all'] >= max(0.95, images_targets['all'] - 0.02), (targets, images_targets)
    assert targets['night'] >= 0.95, targets
