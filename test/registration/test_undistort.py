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


"""Lens distortion from camera_info: the undistortion, the node, register from a bag."""

import cv2
import numpy as np
import pytest
from sgdfuse_ros import messages
from sgdfuse_ros.cli import main
from sgdfuse_ros.config import load_config
from sgdfuse_ros.errors import InputError
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.node.core import FusionNodeCore
from sgdfuse_ros.pipeline.fusion_pipeline import fusion_outputs, FusionResult
from sgdfuse_ros.pipeline.images import Registration, undistort_cameras
from sgdfuse_ros.pipeline.undistort import Undistortion
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.registration import simulate as S
from sgdfuse_ros.transport.memory import MemoryTransport
import yaml

BARREL = [-0.28, 0.09, 0.0005, -0.0007, 0.0]


def rig_frames(seed: int, count: int):
    rig = S.random_rig(np.random.default_rng(seed))
    frames = [S.render_pair(rig, *make_pair(100 + k)[:2], noise=1.0,
                            rng=np.random.default_rng(k)) for k in range(count)]
    return rig, frames


def homography_of(path):
    tree = yaml.safe_load(path.read_text())
    return np.array(tree['/**']['ros__parameters']['registration']['homography']).reshape(3, 3)


def grid(width=320, height=240):
    image = np.zeros((height, width), np.float32)
    image[:, 20::40] = 1.0
    image[20::40, :] = 1.0
    return cv2.GaussianBlur(image, (0, 0), 1.2)


def k_for(width, height, hfov=70.0):
    f = width / 2.0 / np.tan(np.radians(hfov / 2))
    return [f, 0, (width - 1) / 2.0, 0, f, (height - 1) / 2.0, 0, 0, 1]


def info(width, height, d, model='plumb_bob', k=None):
    return messages.camera_info_msg(width, height, messages.make_header(1.0, 'cam'),
                                    k=np.array(k or k_for(width, height)),
                                    distortion_model=model, d=d)


@pytest.mark.parametrize('model, d', [('plumb_bob', BARREL),
                                      ('equidistant', [0.08, -0.04, 0.01, 0.0])])
def test_undistortion_undoes_the_lens(model, d):
    image = grid()
    undistortion = Undistortion.from_info(info(320, 240, d, model))
    bent = undistortion.distort(image)
    inner = (slice(30, 210), slice(40, 280))
    assert np.abs(bent - image)[inner].mean() > 0.02   # the lens moves the lines
    assert np.abs(undistortion.apply(bent) - image)[inner].mean() < 0.006
    # a camera_info calibrated at twice the size (a binned stream) is scaled to the image
    big = Undistortion.from_info(info(640, 480, d, model, k=k_for(640, 480)))
    assert np.abs(big.apply(bent) - image)[inner].mean() < 0.008


def test_camera_info_without_distortion_or_unusable():
    assert Undistortion.from_info(None) is None
    assert Undistortion.from_info(info(320, 240, [0.0] * 5)) is None
    assert Undistortion.from_info(info(320, 240, BARREL, k=[0.0] * 9)) is None  # uncalibrated
    with pytest.raises(InputError, match='distortion model'):
        Undistortion.from_info(info(320, 240, BARREL, model='pinhole_unknown'))
    with pytest.raises(InputError, match='coefficients'):
        Undistortion.from_info(info(320, 240, BARREL[:3]))
    registration = Registration(None)
    visible, problems = undistort_cameras(
        registration, info(320, 240, BARREL, model='nope'), info(320, 240, BARREL), True)
    assert visible and set(problems) == {'thermal'} and 'distortion model' in problems['thermal']
    assert registration.undistort['thermal'] is None
    assert registration.undistort['visible'] is not None
    visible, problems = undistort_cameras(registration, None, info(320, 240, BARREL), False)
    assert not visible and registration.undistort['visible'] is None


def test_registration_undistorts_each_camera_and_camera_info_says_so():
    image = grid()
    lens = Undistortion.from_info(info(320, 240, BARREL))
    bent = lens.distort(image)
    registration = Registration(None)
    assert undistort_cameras(registration, info(320, 240, BARREL), info(320, 240, BARREL),
                             True)[0]
    inner = (slice(30, 210), slice(40, 280))
    assert np.abs(registration.thermal(bent, bent.shape) - image)[inner].mean() < 0.006
    bgr = (np.dstack([bent] * 3) * 255).astype(np.uint8)
    out = registration.visible(bgr)
    assert np.abs(out[..., 0] / 255.0 - image)[inner].mean() < 0.01

    gray = np.zeros((240, 320), np.uint8)
    result = FusionResult(np.dstack([gray] * 3), gray, SemanticPrior.empty(gray.shape, 'thermal'),
                          gray.astype(np.float32), np.dstack([gray] * 3),
                          gray.astype(np.float32), {})
    stamp = messages.make_header(1.0, 'v').stamp
    rgb = info(640, 480, BARREL)
    kept = fusion_outputs(result, stamp, 'v', camera_info=rgb)[messages.FUSED_INFO_TOPIC]
    assert list(kept.d) == pytest.approx(BARREL) and kept.width == 320
    flat = fusion_outputs(result, stamp, 'v', camera_info=rgb,
                          undistorted=True)[messages.FUSED_INFO_TOPIC]
    assert not np.any(np.asarray(flat.d)) and list(flat.k) == list(kept.k)


def test_register_undistorts_from_the_bags_camera_info(tmp_path, capsys):
    """A rig whose two lenses bend its frames: register reads both camera_info and undoes them."""
    from sgdfuse_ros.bag.writer import BagWriter  # rosbags: optional, as the other bag tests

    rig, frames = rig_frames(2, count=6)
    (tw, th), (vw, vh) = rig.thermal_size, rig.visible_size
    thermal_info = info(tw, th, [-0.2, 0.05, 0.0, 0.0, 0.0])
    visible_info = info(vw, vh, BARREL)
    thermal_lens, visible_lens = (Undistortion.from_info(thermal_info),
                                  Undistortion.from_info(visible_info))
    bag = tmp_path / 'bent'
    with BagWriter(bag) as writer:
        for topic, msgtype in (('/thermal/image_raw', messages.IMAGE),
                               ('/thermal/camera_info', messages.CAMERA_INFO),
                               ('/rgb/image_raw', messages.IMAGE),
                               ('/rgb/camera_info', messages.CAMERA_INFO)):
            writer.add_topic(topic, msgtype)
        for k, (thermal, visible) in enumerate(frames):
            stamp = 100.0 + 0.1 * k
            ns = int(stamp * 1e9)
            writer.write('/thermal/image_raw', ns, messages.image_msg(
                thermal_lens.distort(thermal), messages.make_header(stamp, 't'), 'mono8'))
            writer.write('/thermal/camera_info', ns, thermal_info)
            writer.write('/rgb/image_raw', ns, messages.image_msg(
                visible_lens.distort(visible), messages.make_header(stamp, 'v'), 'bgr8'))
            writer.write('/rgb/camera_info', ns, visible_info)
    params = tmp_path / 'rig.yaml'
    assert main(['register', str(bag), '--out', str(params)]) == 0
    err = capsys.readouterr().err
    assert 'undistorted the thermal and visible frames' in err
    assert S.corner_error(rig.homography, homography_of(params), rig.thermal_size) < 2.5
    config = load_config(params)
    assert config['registration.undistort'] is True
    # the same bag taken as it comes: the bent borders pull the homography away
    raw = tmp_path / 'raw.yaml'
    code = main(['register', str(bag), '--out', str(raw), '--no-undistort', '--quiet',
                 '--max-uncertainty', '1000'])
    assert code == 0, capsys.readouterr().err
    assert S.corner_error(rig.homography, homography_of(raw), rig.thermal_size) > 4.0
    assert load_config(raw)['registration.undistort'] is False


class RegisteringPipeline:
    """The pipeline's registration step only (the node hands it each camera's undistortion)."""

    def __init__(self, config):
        self.device = 'cpu'
        self.registration = Registration(None)

    def process(self, thermal, visible, thermal_encoding=None, visible_encoding=None):
        ir = self.registration.thermal(thermal.astype(np.float32) / 255.0, visible.shape)
        vis = self.registration.visible(visible)
        gray = vis[..., 1]
        prior = SemanticPrior.empty(gray.shape, 'thermal')
        return FusionResult(vis, gray, prior, ir, vis, gray.astype(np.float32) / 255, {})

    def close(self):
        pass


@pytest.mark.parametrize('enabled', [True, False])
def test_node_undistorts_each_camera_with_its_camera_info(enabled):
    transport = MemoryTransport('/cam', 'fusion_node', roundtrip=True)
    config = load_config(overrides={'registration.undistort': enabled})
    core = FusionNodeCore(transport, config, name='/cam/fusion_node',
                          pipeline_factory=RegisteringPipeline, threaded=False)
    core.configure()
    core.activate()
    image = (grid() * 255).astype(np.uint8)
    lens = info(320, 240, BARREL)
    transport.publish('thermal/camera_info', lens)
    transport.publish('rgb/camera_info', lens)
    bent = Undistortion.from_info(lens).distort(image)
    transport.publish('thermal/image_raw', messages.image_msg(
        bent, messages.make_header(10.003, 't'), 'mono8'))
    transport.publish('rgb/image_raw', messages.image_msg(
        np.dstack([bent] * 3), messages.make_header(10.0, 'v'), 'bgr8'))
    assert core.process_pending()
    fused = messages.image_from_msg(transport.sent('fused/image')[-1])[0]
    fused_info = transport.sent('fused/camera_info')[-1]
    inner = (slice(30, 210), slice(40, 280))
    error = np.abs(fused[..., 1].astype(float) - image)[inner].mean()
    registration = core.pipeline.registration
    if enabled:
        assert registration.undistort['thermal'] is not None
        assert error < 3.0 and not np.any(np.asarray(fused_info.d))
    else:
        assert registration.undistort['thermal'] is None
        assert error > 4.0 and list(fused_info.d) == pytest.approx(BARREL)
    core.shutdown()
