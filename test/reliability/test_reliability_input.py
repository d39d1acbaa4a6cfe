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
Bad input, tried and answered.

The pipeline raises one-line InputErrors, the node core (over the in-memory transport, with a CDR
round trip per message) skips the frame with a counted, rate-limited warning and a diagnostic, and
keeps fusing. Every node test checks the books: received = published + dropped + rejected +
pending, per input.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.node.diagnostics import as_dict, OK, WARN
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from test_reliability_support import (
    balanced,
    big_endian_mono16,
    EchoPipeline,
    FakeClock,
    H,
    image,
    make_core,
    NS,
    one_line,
    raw_image,
    scene,
    send_pair,
    W,
)

CLASSICAL = {'first_stage.type': 'laplacian', 'refiner.steps': 0, 'prior.source': 'thermal'}


@pytest.fixture(scope='module')
def frames():
    return scene()


@pytest.fixture(scope='module')
def pipeline():
    with FusionPipeline(load_config(overrides=CLASSICAL)) as p:
        yield p


def diagnostics(core):
    return as_dict(core.diagnostics())


# --- the pipeline --------------------------------------------------------------------------------

PIPELINE_CASES = {
    'empty': (lambda t, v: (np.zeros((0, 0), np.uint16), v, None, None), 'empty'),
    'zero width': (lambda t, v: (np.zeros((H, 0), np.uint16), v, None, None), 'empty'),
    'zero height': (lambda t, v: (t, np.zeros((0, W, 3), np.uint8), None, None), 'empty'),
    'not an image': (lambda t, v: (t.ravel(), v, None, None), 'not an image'),
    'colour thermal': (lambda t, v: (v, v, None, None), 'single-channel'),
    'dtype vs encoding': (lambda t, v: (t, v, 'mono8', None), 'does not match encoding'),
    'unknown thermal encoding': (lambda t, v: (t, v, 'yuv422', None), 'unsupported thermal'),
    'unknown visible encoding': (lambda t, v: (t, v, None, 'bayer_rggb8'),
                                 'unsupported visible'),
    'visible dtype': (lambda t, v: (t, v.astype(np.float32), None, 'bgr8'), 'does not match'),
    'sizes differ': (lambda t, v: (t[: H // 2], v, None, None), 'differ in size'),
    'all NaN 32FC1': (lambda t, v: (np.full((H, W), np.nan, np.float32), v, '32FC1', None),
                      'no finite pixels'),
    'not arrays': (lambda t, v: ('thermal.png', v, None, None), 'numpy arrays'),
}


@pytest.mark.parametrize('case', sorted(PIPELINE_CASES))
def test_pipeline_answers_bad_frames_with_one_line_input_errors(pipeline, frames, case):
    thermal, visible, _ = frames
    build, needle = PIPELINE_CASES[case]
    args = build(thermal, visible)
    with pytest.raises(InputError) as err:
        pipeline.process(args[0], args[1], args[2], args[3])
    assert needle in one_line(str(err.value))
    assert pipeline.process(thermal, visible).fused_bgr.shape == (H, W, 3)  # still works


def test_pipeline_rejects_frames_beyond_the_pixel_limit(frames):
    thermal, visible, _ = frames
    config = load_config(overrides=dict(CLASSICAL, **{'limits.max_input_pixels': W * H - 1}))
    with FusionPipeline(config) as small:
        with pytest.raises(InputError, match='exceeds limits.max_input_pixels'):
            small.process(thermal, visible)


@pytest.mark.parametrize('case', ['constant mono16 0', 'constant mono16 65535',
                                  'constant 32FC1', 'NaN and inf 32FC1', 'big-endian array'])
def test_pipeline_fuses_degenerate_but_valid_thermal_frames(pipeline, frames, case):
    thermal, visible, _ = frames
    if case.startswith('constant mono16'):
        raw, encoding = np.full((H, W), int(case.split()[-1]), np.uint16), 'mono16'
    elif case == 'constant 32FC1':
        raw, encoding = np.full((H, W), 21.5, np.float32), '32FC1'
    elif case == 'NaN and inf 32FC1':
        raw = 20 + thermal.astype(np.float32) / 100
        raw[::3] = np.nan
        raw[1, :5] = np.inf
        raw[2, :5] = -np.inf
        encoding = '32FC1'
    else:
        raw, encoding = thermal.astype('>u2'), 'mono16'
    result = pipeline.process(raw, visible, encoding)
    assert np.isfinite(result.thermal).all() and np.isfinite(result.first_stage_y).all()
    assert result.fused_bgr.dtype == np.uint8 and result.fused_bgr.shape == (H, W, 3)
    if case.startswith('constant'):
        np.testing.assert_allclose(result.thermal, 0.5)  # no noise amplified: mid grey
    if case == 'big-endian array':
        reference = pipeline.process(thermal, visible, 'mono16')
        np.testing.assert_array_equal(result.fused_bgr, reference.fused_bgr)


def test_pipeline_registers_cameras_of_different_sizes_with_a_homography(frames):
    thermal, visible, _ = frames
    small = thermal[::2, ::2].copy()  # a half-resolution thermal camera, same field of view
    config = load_config(overrides=dict(CLASSICAL, **{
        'registration.homography': [2.0, 0, 0.5, 0, 2.0, 0.5, 0, 0, 1]}))
    with FusionPipeline(config) as p:
        result = p.process(small, visible, 'mono16')
    assert result.fused_bgr.shape == (H, W, 3) and result.thermal.shape == (H, W)


# --- the node core: one malformed message at a time ---------------------------------------------

def _cases(thermal, visible):
    h, w = thermal.shape
    ok = thermal.tobytes()
    return {
        # name: (topic, message, rejected reason)
        'empty image': ('thermal', raw_image(1.0, 0, 0, 'mono16', 0, b''), 'size'),
        'zero width': ('thermal', raw_image(1.0, h, 0, 'mono16', 0, b''), 'size'),
        'zero height': ('rgb', raw_image(1.0, 0, w, 'bgr8', 3 * w, b''), 'size'),
        'data shorter than height*step': ('thermal', raw_image(1.0, h, w, 'mono16', 2 * w,
                                                               ok[: len(ok) // 2]), 'decode'),
        'data longer than height*step': ('thermal', raw_image(1.0, h, w, 'mono16', 2 * w,
                                                              ok + b'\0' * 64), 'decode'),
        'step smaller than a row': ('rgb', raw_image(1.0, h, w, 'bgr8', w, visible.tobytes()),
                                    'decode'),
        'unknown encoding': ('thermal', raw_image(1.0, h, w, 'yuv422', 2 * w, ok), 'encoding'),
        'colour image on the thermal topic': ('thermal', image(visible, 1.0, 'bgr8'),
                                              'encoding'),
        '16-bit image on the RGB topic': ('rgb', image(thermal, 1.0, 'mono16'), 'encoding'),
        'absurd size, no data': ('thermal', raw_image(1.0, 100_000, 100_000, 'mono16', 200_000,
                                                      b''), 'size'),
        'beyond limits.max_input_pixels': ('rgb', image(np.zeros((4100, 4100, 3), np.uint8),
                                                        1.0, 'bgr8'), 'size'),
    }


CASE_NAMES = sorted(_cases(np.zeros((H, W), np.uint16), np.zeros((H, W, 3), np.uint8)))


@pytest.mark.parametrize('case', CASE_NAMES)
def test_node_skips_a_malformed_image_counts_it_and_keeps_fusing(frames, case, caplog):
    thermal, visible, _ = frames
    topic, msg, reason = _cases(thermal, visible)[case]
    core, t = make_core(dict(CLASSICAL, **{'warn.period_s': 60.0}))
    with caplog.at_level(logging.WARNING):
        t.publish(f'{topic}/image_raw', msg)
    stats = balanced(core)
    assert stats['inputs'][topic]['received'] == 1
    assert stats['inputs'][topic]['rejected'][reason] == 1, stats['inputs'][topic]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f'skipped a {topic} frame' in one_line(warnings[0])
    assert len(warnings[0]) < 400
    report = diagnostics(core)[f'{NS[1:]}/fusion_node: inputs']
    assert report['level'] == WARN and f'1 {topic} frames rejected' in report['message']
    assert report['values'][f'{topic} rejected ({reason})'] == '1'
    send_pair(t, 2.0, thermal, visible)  # the node keeps working
    assert core.process_pending()
    assert len(t.sent('fused/image')) == 1
    balanced(core)
    core.shutdown()
    balanced(core)


def test_a_huge_encoding_string_gives_a_short_warning(frames, caplog):
    thermal, _, _ = frames
    core, t = make_core(CLASSICAL, factory=EchoPipeline)
    with caplog.at_level(logging.WARNING):
        t.publish('thermal/image_raw', raw_image(1.0, H, W, 'x' * 100_000, 2 * W,
                                                 thermal.tobytes()))
    assert balanced(core)['inputs']['thermal']['rejected']['encoding'] == 1
    assert max(len(r.getMessage()) for r in caplog.records) < 400
    core.shutdown()


def test_big_endian_mono16_is_decoded_not_rejected(frames):
    thermal, visible, _ = frames
    core, t = make_core(CLASSICAL)
    send_pair(t, 1.0, thermal, visible)
    assert core.process_pending()
    t.publish('thermal/image_raw', big_endian_mono16(thermal, 2.003))
    t.publish('rgb/image_raw', image(visible, 2.0, 'bgr8'))
    assert core.process_pending()
    little, big = (messages.image_from_msg(m)[0] for m in t.sent('fused/image'))
    np.testing.assert_array_equal(little, big)  # same picture, whatever the byte order
    stats = balanced(core)
    assert sum(stats['inputs']['thermal']['rejected'].values()) == 0
    assert stats['inputs']['thermal']['published'] == 2
    core.shutdown()


def test_constant_and_non_finite_thermal_frames(frames):
    thermal, visible, _ = frames
    core, t = make_core(CLASSICAL)
    nan_inf = 20 + thermal.astype(np.float32) / 100
    nan_inf[::4] = np.nan
    nan_inf[1, :8] = np.inf
    nan_inf[2, :8] = -np.inf
    good = [(np.full((H, W), 9000, np.uint16), 'mono16'),
            (np.full((H, W), 21.5, np.float32), '32FC1'),
            (nan_inf, '32FC1')]
    for i, (raw, encoding) in enumerate(good):
        send_pair(t, 1.0 + i, raw, visible, encoding)
        assert core.process_pending()
    assert len(t.sent('fused/image')) == 3
    for msg in t.sent('fused/image'):
        fused, _ = messages.image_from_msg(msg)
        assert fused.shape == (H, W, 3)
    # nothing finite at all: the pipeline cannot window it; the pair is rejected, not the node
    send_pair(t, 10.0, np.full((H, W), np.nan, np.float32), visible, '32FC1')
    assert core.process_pending()
    stats = balanced(core)
    assert stats['inputs']['thermal']['rejected']['pipeline'] == 1
    assert stats['inputs']['rgb']['rejected']['pipeline'] == 1
    send_pair(t, 11.0, thermal, visible)
    assert core.process_pending() and len(t.sent('fused/image')) == 4
    balanced(core)
    core.shutdown()


def test_different_sizes_rejected_without_registration_fused_with_it(frames):
    thermal, visible, _ = frames
    half = np.ascontiguousarray(thermal[::2, ::2])
    core, t = make_core(CLASSICAL)
    send_pair(t, 1.0, half, visible)
    assert core.process_pending()
    stats = balanced(core)
    assert stats['inputs']['thermal']['rejected']['pipeline'] == 1
    assert stats['output']['pipeline_errors'] == 1
    core.shutdown()
    core, t = make_core(dict(CLASSICAL, **{
        'registration.homography': [2.0, 0, 0.5, 0, 2.0, 0.5, 0, 0, 1]}))
    send_pair(t, 1.0, half, visible)
    assert core.process_pending()
    assert balanced(core)['inputs']['thermal']['published'] == 1
    core.shutdown()


# --- stamps --------------------------------------------------------------------------------------

def test_out_of_order_duplicate_and_far_apart_stamps_are_counted(frames):
    thermal, visible, _ = frames
    core, t = make_core(dict(CLASSICAL, **{'sync.slop': 0.01}), factory=EchoPipeline)

    def th(stamp):
        t.publish('thermal/image_raw', image(thermal, stamp, 'mono16'))
        core.process_pending()

    def vis(stamp):
        t.publish('rgb/image_raw', image(visible, stamp, 'bgr8'))
        core.process_pending()

    th(1.0)
    vis(1.0)           # pair 1.0
    th(1.2)
    th(1.1)            # out of order, but newer than the last pair: waits, sorted
    th(1.1)            # duplicate of a waiting stamp
    vis(1.1)           # pairs with 1.1
    th(1.05)           # older than the last thermal paired (1.1): late
    vis(1.2)           # pairs with 1.2
    vis(500.0)         # far ahead: no thermal partner
    th(900.0)          # far ahead of that: 500.0 is decided, unmatched; 900 waits
    stats = balanced(core)
    thermal_in, visible_in = stats['inputs']['thermal'], stats['inputs']['rgb']
    assert thermal_in['received'] == 6 and visible_in['received'] == 4
    assert thermal_in['published'] == visible_in['published'] == 3
    assert thermal_in['dropped']['duplicate'] == 1 and thermal_in['dropped']['late'] == 1
    assert visible_in['dropped']['unmatched'] == 1
    assert thermal_in['pending'] == 1  # 900.0 waits for a partner
    assert [messages.stamp_seconds(m) for m in t.sent('fused/image')] == \
        pytest.approx([1.0, 1.1, 1.2])
    core.shutdown()
    stats = balanced(core)
    assert stats['inputs']['thermal']['pending'] == 0
    assert stats['inputs']['thermal']['dropped']['unmatched'] == 1


def test_a_camera_repeating_its_stamp_is_reported(frames):
    thermal, visible, _ = frames
    clock = FakeClock()
    core, t = make_core(CLASSICAL, factory=EchoPipeline, clock=clock)
    for _ in range(80):  # both drivers stuck on the same stamp, at 10 Hz, for 8 s
        send_pair(t, 5.0, thermal, visible, jitter=0.0)
        while core.process_pending():
            pass
        clock.advance(0.1)
    stats = balanced(core)
    assert stats['output']['published'] == 1  # the first pair; the rest are not new
    assert stats['inputs']['thermal']['dropped']['late'] == 79
    sync = diagnostics(core)[f'{NS[1:]}/fusion_node: synchronisation']
    assert sync['level'] == WARN and 'no pair formed in the last' in sync['message']
    assert 'late' in sync['message']
    core.shutdown()


def test_stamps_of_two_unsynchronised_clocks_never_pair_and_warn(frames):
    thermal, visible, _ = frames
    clock = FakeClock()
    core, t = make_core(CLASSICAL, factory=EchoPipeline, clock=clock)
    for i in range(20):  # the thermal driver stamps with another clock, 1000 s ahead
        t.publish('thermal/image_raw', image(thermal, 1000.0 + i / 10, 'mono16'))
        t.publish('rgb/image_raw', image(visible, i / 10, 'bgr8'))
        clock.advance(0.1)
    stats = balanced(core)
    assert stats['output']['published'] == 0
    assert stats['inputs']['rgb']['dropped']['unmatched'] == 20
    sync = diagnostics(core)[f'{NS[1:]}/fusion_node: synchronisation']
    assert sync['level'] == WARN and 'no pair formed' in sync['message']
    core.shutdown()
    balanced(core)


def test_a_topic_that_stops_is_reported_and_fusion_resumes_when_it_returns(frames):
    thermal, visible, _ = frames
    clock = FakeClock()
    core, t = make_core(CLASSICAL, factory=EchoPipeline, clock=clock)
    stamp = 0.0

    def stream(seconds, with_thermal=True):
        nonlocal stamp
        for _ in range(int(round(seconds * 10))):
            if with_thermal:
                t.publish('thermal/image_raw', image(thermal, stamp + 0.002, 'mono16'))
            t.publish('rgb/image_raw', image(visible, stamp, 'bgr8'))
            while core.process_pending():
                pass
            stamp += 0.1
            clock.advance(0.1)

    stream(3.0)
    inputs = diagnostics(core)[f'{NS[1:]}/fusion_node: inputs']
    assert inputs['level'] == OK
    published_before = balanced(core)['output']['published']
    stream(4.0, with_thermal=False)  # the thermal camera goes silent for 4 s
    report = diagnostics(core)
    inputs = report[f'{NS[1:]}/fusion_node: inputs']
    assert inputs['level'] == WARN and 'no thermal images for 4.1 s' in inputs['message']
    assert float(inputs['values']['thermal last frame age (s)']) == pytest.approx(4.1, abs=0.01)
    assert core.state == 'active'
    stats = balanced(core)
    assert stats['output']['published'] == published_before
    visible_in = stats['inputs']['rgb']
    assert visible_in['dropped']['overflow'] + visible_in['pending'] == 40  # waited, then gave up
    stream(3.0)  # it comes back
    inputs = diagnostics(core)[f'{NS[1:]}/fusion_node: inputs']
    assert inputs['level'] == OK, inputs['message']
    assert balanced(core)['output']['published'] >= published_before + 29
    core.shutdown()
    balanced(core)


def test_warnings_are_rate_limited_and_count_what_they_held_back(frames, caplog):
    thermal, visible, _ = frames
    clock = FakeClock()
    core, t = make_core(dict(CLASSICAL, **{'warn.period_s': 5.0}), factory=EchoPipeline,
                        clock=clock)
    bad = image(visible, 1.0, 'bgr8')  # colour on the thermal topic
    with caplog.at_level(logging.WARNING):
        for _ in range(30):  # 30 bad frames in 3 s: one warning
            t.publish('thermal/image_raw', bad)
            clock.advance(0.1)
        first = [r.getMessage() for r in caplog.records]
        clock.advance(5.0)
        t.publish('thermal/image_raw', bad)
        t.publish('rgb/image_raw', image(thermal, 1.0, 'mono16'))  # another key: warned too
    messages_ = [r.getMessage() for r in caplog.records]
    assert len(first) == 1
    assert len(messages_) == 3 and '(29 more since the last warning)' in messages_[1]
    stats = balanced(core)
    assert stats['inputs']['thermal']['rejected']['encoding'] == 31
    assert stats['inputs']['thermal']['rejected_recently'] == 1
    core.shutdown()
