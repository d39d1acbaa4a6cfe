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

"""The learned stages: shapes and ranges, the weights files, the sampler, the pipeline."""

import importlib.util

import numpy as np
import pytest
from sgdfuse_ros.config import load_config, models_dir
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.fusion.backbone import pad_to_multiple
from sgdfuse_ros.fusion.laplacian import laplacian_fusion
from sgdfuse_ros.fusion.network import FirstStageNet, load_first_stage
from sgdfuse_ros.fusion.refiner import (cosine_schedule, highpass_planes, linear_schedule,
                                        load_refiner, pack_planes, refine, RefinerNet,
                                        sample_ddim, sampling_timesteps, sdedit_start)
from sgdfuse_ros.fusion.tensors import highpass, image_tensor, prior_tensors, upsample_to
from sgdfuse_ros.fusion.weights import save_weights
from sgdfuse_ros.pipeline import stages
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.prior.format import SemanticPrior
from sgdfuse_ros.prior.thermal import ThermalPrior
import torch

SMALL_FIRST = {'levels': 4, 'c1': 8, 'c2': 16, 'blocks': 1, 'fine_vis': True}
SMALL_REFINER = {'c1': 8, 'c2': 16, 'blocks': 1, 'temb': 8, 'schedule': 'cosine', 'T': 1000,
                 't_start': 200}


def scene(h=301, w=496, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    ir = 0.3 + 0.05 * rng.standard_normal((h, w))
    ir[(yy - h // 2) ** 2 + (xx - w // 3) ** 2 < 30 ** 2] = 0.9  # a warm target
    vis = 0.5 + 0.3 * np.sin(xx / 9.0) * (yy > h // 3) + 0.03 * rng.standard_normal((h, w))
    return np.clip(ir, 0, 1).astype(np.float32), np.clip(vis, 0, 1).astype(np.float32)


def randomised(model, seed=1, scale=0.05):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    first = randomised(FirstStageNet(**SMALL_FIRST), 1, 0.3)
    refiner = randomised(RefinerNet(**SMALL_REFINER), 2, 0.1)
    fp = save_weights(tmp_path / 'first_stage.pt', 'first_stage', SMALL_FIRST, first)
    rp = save_weights(tmp_path / 'refiner.pt', 'refiner', SMALL_REFINER, refiner)
    return fp, rp


def test_untrained_first_stage_is_the_hand_designed_fusion():
    ir, vis = scene(64, 96)
    net = FirstStageNet(**SMALL_FIRST).eval()
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    with torch.no_grad():
        out = net(t(ir), t(vis), t(np.zeros_like(ir)), t(np.zeros_like(ir)))[0, 0].numpy()
    # zero head: base 0.75*(A+B) - 0.5*mean, details max-abs plus sigmoid(-3) mixes
    assert out.shape == ir.shape
    assert np.corrcoef(out.ravel(), (ir + vis).ravel())[0, 1] > 0.9
    assert abs(float(out.std()) - float(laplacian_fusion(ir, vis).std())) < 0.2


def test_first_stage_without_fine_vis_still_loads(tmp_path):
    """
    Older weights without ``fine_vis`` still load.

    Weights written before the finest band had its visible mix load as that older network;
    fine_vis=True adds exactly one head channel.
    """
    old_arch = {k: v for k, v in SMALL_FIRST.items() if k != 'fine_vis'}
    old = randomised(FirstStageNet(**old_arch), 3, 0.3)
    path = save_weights(tmp_path / 'old.pt', 'first_stage', old_arch, old)
    stage = load_first_stage(path)
    assert stage.model.fine_vis is False
    ir, vis = scene(64, 96)
    assert stage(ir, vis, None).shape == (64, 96)
    new = FirstStageNet(**SMALL_FIRST)
    extra = sum(p.numel() for p in new.parameters()) - sum(p.numel() for p in old.parameters())
    assert extra == new.net.head.in_channels + 1


def _finest(x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None]
    up = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(t, 2), scale_factor=2,
                                         mode='bilinear', align_corners=False)
    return (t - up)[0, 0].numpy()


def test_fine_vis_mix_passes_the_visible_finest_band():
    """
    A daylight sky keeps the visible camera's finest band.

    Thermal sky noise is stronger than the visible sky's fine detail, so the max-abs finest band
    takes the thermal noise; with the finest visible gain high and the max-abs gain low (what the
    network learns for a daylight sky) the output's finest band is the visible one.
    """
    net = FirstStageNet(**SMALL_FIRST).eval()
    rng = np.random.default_rng(0)
    ir = (0.2 + 0.08 * rng.standard_normal((64, 64))).astype(np.float32)
    vis = (0.8 + 0.02 * rng.standard_normal((64, 64))).astype(np.float32)
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    zeros = t(np.zeros_like(ir))

    def corr_with_visible():
        with torch.no_grad():
            out = net(t(ir), t(vis), zeros, zeros)[0, 0].numpy()
        return np.corrcoef(_finest(out)[4:-4, 4:-4].ravel(),
                           _finest(vis)[4:-4, 4:-4].ravel())[0, 1]

    before = corr_with_visible()
    k = 4 + 3 * (net.n_detail - 1)
    with torch.no_grad():
        net.net.head.bias[3] = -20.0  # finest max-abs gain -> 0
        net.net.head.bias[k] = 20.0   # finest visible gain -> 1
    after = corr_with_visible()
    assert before < 0.5 and after > 0.8


def test_first_stage_odd_size_shape_dtype_range(weights):
    fp, _ = weights
    stage = load_first_stage(fp)
    ir, vis = scene()
    prior = ThermalPrior()(ir, vis)
    out = stage(ir, vis, prior)
    assert out.shape == (301, 496) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert stage(ir, vis, None).shape == (301, 496)  # no prior at all: zeros


def test_prior_changes_the_first_stage_output(weights):
    fp, _ = weights
    stage = load_first_stage(fp)
    ir, vis = scene()
    with_prior = stage(ir, vis, ThermalPrior()(ir, vis))
    without = stage(ir, vis, SemanticPrior.empty(ir.shape))
    assert np.abs(with_prior - without).max() > 1e-4


def test_refiner_odd_size_and_seeded_determinism(weights):
    _, rp = weights
    ir, vis = scene()
    prior = ThermalPrior()(ir, vis)
    out = load_refiner(rp, 2, seed=3)(ir, vis, prior, laplacian_fusion(ir, vis))
    assert out.shape == (301, 496) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    ir, vis = scene(61, 93)
    prior = ThermalPrior()(ir, vis)
    first = laplacian_fusion(ir, vis)
    for k in (1, 2, 4):
        a = load_refiner(rp, k, seed=3)(ir, vis, prior, first)
        b = load_refiner(rp, k, seed=3)(ir, vis, prior, first)
        c = load_refiner(rp, k, seed=4)(ir, vis, prior, first)
        assert a.shape == (61, 93) and a.min() >= 0.0 and a.max() <= 1.0
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 1e-6  # the noise matters, the seed fixes it


def test_sampler_starts_from_the_noised_first_stage_and_calls_k_times():
    schedule = cosine_schedule(1000)
    first = torch.rand(1, 1, 16, 16) * 2 - 1
    noise = torch.randn(1, 1, 16, 16)
    for k in (1, 2, 4):
        calls = []

        def denoise(x, t):
            calls.append((t, x.clone()))
            return first * 0.5

        out = refine(denoise, first, k, 240, schedule, noise)
        assert [t for t, _ in calls] == sampling_timesteps(240, k)
        expected = schedule.signal(240) * first + schedule.noise(240) * noise
        torch.testing.assert_close(calls[0][1], expected)
        torch.testing.assert_close(out, first * 0.5)


def test_ddim_with_an_exact_denoiser_recovers_x0():
    schedule = linear_schedule(1000)
    x0 = torch.rand(1, 1, 8, 8) * 2 - 1
    x_t = sdedit_start(x0, 300, schedule, torch.randn(1, 1, 8, 8))
    out = sample_ddim(lambda x, t: x0, x_t, [300, 150, 75], schedule)
    torch.testing.assert_close(out, x0)


def test_schedules_are_data():
    for schedule in (linear_schedule(), cosine_schedule()):
        a = schedule.alphas_cumprod
        assert a.shape == (1000,) and np.all(np.diff(a) < 0) and 0 < a[-1] < a[0] <= 1
        assert np.all(np.diff(schedule.sigmas) > 0)
    assert sampling_timesteps(250, 2) == [250, 125]
    with pytest.raises(ConfigError):
        sampling_timesteps(250, 0)


def test_pipeline_loads_weights_through_config(weights):
    fp, rp = weights
    cfg = load_config(overrides={'first_stage.type': 'network', 'first_stage.weights': str(fp),
                                 'refiner.weights': str(rp), 'refiner.steps': 2,
                                 'device': 'cpu'})
    ir, vis = scene(120, 161)
    bgr = np.dstack([vis, vis * 0.9, vis * 0.8])
    with FusionPipeline(cfg) as pipe:
        result = pipe.process((ir * 255).astype(np.uint8), (bgr * 255).astype(np.uint8))
    assert result.refined and result.fused_bgr.shape == (120, 161, 3)
    assert result.first_stage_y.shape == (120, 161)
    first_stage_u8 = (np.clip(result.first_stage_y, 0, 1) * 255 + .5).astype(np.uint8)
    assert not np.array_equal(result.fused_y, first_stage_u8)


def _one_line(err):
    text = str(err.value)
    assert '\n' not in text
    return text


def test_missing_corrupt_and_mismatched_weights_are_one_line_config_errors(tmp_path, weights):
    fp, rp = weights
    cfg = load_config(overrides={'first_stage.weights': str(tmp_path / 'nope.pt')})
    with pytest.raises(ConfigError) as err:
        stages.build_first_stage(cfg, 'cpu')
    assert 'nope.pt' in _one_line(err)

    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(fp.read_bytes()[:200])
    with pytest.raises(ConfigError) as err:
        load_first_stage(corrupt)
    assert 'corrupt.pt' in _one_line(err)

    garbage = tmp_path / 'garbage.pt'
    garbage.write_text('not a torch file')
    with pytest.raises(ConfigError) as err:
        load_first_stage(garbage)
    assert 'garbage.pt' in _one_line(err)

    with pytest.raises(ConfigError) as err:  # a refiner file where a first stage is expected
        load_first_stage(rp)
    assert "expected 'first_stage'" in _one_line(err)

    other = FirstStageNet(levels=4, c1=12, c2=16, blocks=1)
    mismatched = tmp_path / 'mismatched.pt'
    save_weights(mismatched, 'first_stage', SMALL_FIRST, other)  # arch says c1=8, tensors c1=12
    with pytest.raises(ConfigError) as err:
        load_first_stage(mismatched)
    assert 'mismatched.pt' in _one_line(err) and 'do not match' in _one_line(err)

    bad_arch = tmp_path / 'bad_arch.pt'
    save_weights(bad_arch, 'refiner', {**SMALL_REFINER, 't_start': 5000}, other)
    cfg = load_config(overrides={'refiner.weights': str(bad_arch), 'refiner.steps': 2})
    with pytest.raises(ConfigError) as err:
        stages.build_refiner(cfg, 'cpu')
    assert 'bad_arch.pt' in _one_line(err)


def test_onnx_first_stage_matches_torch_at_an_odd_size(weights):
    pytest.importorskip('onnxruntime')
    fp, _ = weights
    cfg = load_config(overrides={'backend': 'onnx', 'first_stage.weights': str(fp),
                                 'device': 'cpu'})
    stage = stages.build_first_stage(cfg, 'cpu')
    assert stage.backend == 'onnx'
    ir, vis = scene(61, 93)
    prior = ThermalPrior()(ir, vis)
    out = stage(ir, vis, prior)
    assert out.shape == (61, 93) and out.dtype == np.float32
    np.testing.assert_allclose(out, load_first_stage(fp)(ir, vis, prior), atol=1e-5)
    stage.close()


@pytest.mark.parametrize('backend', ['torch', 'onnx'])
def test_tuned_for_detectors_runs_the_shipped_detector_weights_on_both_backends(backend):
    if backend == 'onnx':
        pytest.importorskip('onnxruntime')
    ir, vis = scene(61, 93)
    prior = ThermalPrior()(ir, vis)
    out = {}
    for tuned in ('images', 'detectors'):
        cfg = load_config(overrides={'backend': backend, 'device': 'cpu',
                                     'first_stage.tuned_for': tuned})
        stage = stages.build_first_stage(cfg, 'cpu')
        assert getattr(stage, 'backend', 'torch') == backend
        out[tuned] = stage(ir, vis, prior)
        if hasattr(stage, 'close'):
            stage.close()
    shipped = load_first_stage(models_dir() / 'first_stage_detectors.pt')(ir, vis, prior)
    np.testing.assert_allclose(out['detectors'], shipped, atol=1e-5)
    assert np.abs(out['detectors'] - out['images']).mean() > 1e-3  # another network


def test_onnx_refiner_matches_torch(weights):
    pytest.importorskip('onnxruntime')
    _, rp = weights
    cfg = load_config(overrides={'backend': 'onnx', 'refiner.weights': str(rp),
                                 'refiner.steps': 2, 'refiner.seed': 3, 'device': 'cpu'})
    refiner = stages.build_refiner(cfg, 'cpu')
    assert refiner.backend == 'onnx'
    ir, vis = scene(61, 93)
    prior = ThermalPrior()(ir, vis)
    first = laplacian_fusion(ir, vis)
    out = refiner(ir, vis, prior, first)
    assert out.shape == (61, 93) and out.dtype == np.float32
    np.testing.assert_allclose(out, load_refiner(rp, 2, seed=3)(ir, vis, prior, first), atol=1e-5)
    refiner.close()


def test_pack_planes_is_cat_and_replicate_padding():
    rng = np.random.default_rng(5)
    planes = [rng.random((61, 93), dtype=np.float32) for _ in range(3)]
    packed = pack_planes(planes, 8, lead=1)
    assert packed.shape == (1, 4, 64, 96) and packed.dtype == np.float32
    expected, size = pad_to_multiple(torch.cat([torch.from_numpy(p)[None, None]
                                                for p in planes], dim=1), 8)
    assert size == (61, 93)
    np.testing.assert_array_equal(packed[:, 1:], expected.numpy())
    again = pack_planes([p[:, :90] for p in planes], 8, lead=1, out=packed)
    assert again is packed  # the buffer is reused while the padded size holds
    np.testing.assert_array_equal(again[0, 1, :61, :90], planes[0][:, :90])
    np.testing.assert_array_equal(again[0, 1, :, 90:], np.repeat(again[0, 1, :, 89:90], 6, 1))
    assert pack_planes(planes, 8, out=packed).shape == (1, 3, 64, 96)  # other shape: new one


def test_highpass_planes_matches_the_torch_highpass():
    x = torch.rand(1, 2, 64, 96, generator=torch.Generator().manual_seed(2))
    got = highpass_planes(x[0].numpy())
    np.testing.assert_allclose(got, highpass(x)[0].numpy(), atol=1e-6)
    assert np.abs(got).max() > 0.1
    with pytest.raises(ValueError):
        highpass_planes(np.zeros((1, 63, 96), np.float32))


def test_refiner_cpu_paths_match_the_network_forward(weights):
    _, rp = weights
    refiner = load_refiner(rp, 2, seed=3)
    onnx = None
    if importlib.util.find_spec('onnxruntime') is not None:
        onnx = stages.build_refiner(load_config(overrides={
            'backend': 'onnx', 'refiner.weights': str(rp), 'refiner.steps': 2,
            'refiner.seed': 3, 'device': 'cpu'}), 'cpu')
    outputs = []
    for h, w in ((61, 93), (48, 64), (61, 93)):  # a change of size and back: buffers per size
        ir, vis = scene(h, w)
        prior = ThermalPrior()(ir, vis)
        first = laplacian_fusion(ir, vis)
        t, b = prior_tensors(prior, ir.shape, 'cpu')
        with torch.no_grad():
            expected = refiner.model(image_tensor(ir, 'cpu'), image_tensor(vis, 'cpu'), t, b,
                                     image_tensor(first, 'cpu'), 2, refiner.noise((h, w)))
        expected = expected[0, 0].numpy()
        got = refiner(ir, vis, prior, first)
        assert got.shape == (h, w) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)
        if onnx is not None:
            np.testing.assert_allclose(onnx(ir, vis, prior, first), expected, atol=1e-5)
        outputs.append(got)
    np.testing.assert_array_equal(outputs[0], outputs[2])
    if onnx is not None:
        onnx.close()


def test_predict_x0_is_the_documented_parameterisation(weights):
    _, rp = weights
    model = load_refiner(rp, 2).model
    gen = torch.Generator().manual_seed(4)
    inputs = torch.rand(1, 6, 64, 96, generator=gen)
    hp = torch.rand(1, 2, 64, 96, generator=gen) - 0.5
    with torch.no_grad():
        features = model.time_features(torch.full((1,), 200))
        out = model.net(inputs, features)
        residual = torch.nn.functional.pixel_shuffle(out[:, :16], 4)
        gains = upsample_to(0.5 * torch.tanh(out[:, 16:18]), residual)
        expected = (2.0 * inputs[:, 5:6] - 1.0) + residual \
            + 2.0 * (gains * hp).sum(dim=1, keepdim=True)
        got = model.predict_x0(inputs, features, hp)
    assert torch.equal(got, expected)  # the sum written out is the same sum, bit for bit
    assert float((got - (2.0 * inputs[:, 5:6] - 1.0)).abs().max()) > 1e-4


def test_onnx_graphs_are_exported_once_per_weights_file(weights, tmp_path, monkeypatch):
    """A process that builds stages again from the same file (a corpus worker) exports once."""
    pytest.importorskip('onnxruntime')
    from sgdfuse_ros.onnx import fusion_networks
    fp, rp = weights
    exports = []
    for name in ('export_first_stage', 'export_denoiser'):
        real = getattr(fusion_networks, name)
        monkeypatch.setattr(fusion_networks, name,
                            lambda model, path, real=real, name=name:
                            exports.append(name) or real(model, path))
    monkeypatch.setattr(fusion_networks, '_GRAPHS', type(fusion_networks._GRAPHS)())
    cfg = load_config(overrides={'backend': 'onnx', 'first_stage.weights': str(fp),
                                 'refiner.weights': str(rp), 'refiner.steps': 2,
                                 'device': 'cpu'})
    ir, vis = scene(61, 93)
    prior = ThermalPrior()(ir, vis)
    first = laplacian_fusion(ir, vis)
    outputs = []
    for _ in range(2):
        stage, refiner = stages.build_first_stage(cfg, 'cpu'), stages.build_refiner(cfg, 'cpu')
        outputs.append((stage(ir, vis, prior), refiner(ir, vis, prior, first)))
        stage.close()
        refiner.close()
    assert exports == ['export_first_stage', 'export_denoiser']  # the second build: none
    for a, b in zip(*outputs):
        np.testing.assert_array_equal(a, b)
    # other weights in the same file's place: a new graph (the key is the file's content)
    other = randomised(FirstStageNet(**SMALL_FIRST), 5, 0.3)
    save_weights(fp, 'first_stage', SMALL_FIRST, other)
    stage = stages.build_first_stage(cfg, 'cpu')
    assert exports[-1] == 'export_first_stage' and len(exports) == 3
    np.testing.assert_allclose(stage(ir, vis, prior), load_first_stage(fp)(ir, vis, prior),
                               atol=1e-5)
    stage.close()
