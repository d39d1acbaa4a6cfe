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

"""ONNX back end: export with dynamic image size, run on ONNX Runtime, choose providers quietly."""

import logging

import numpy as np
import pytest

torch = pytest.importorskip('torch')
ort = pytest.importorskip('onnxruntime')

from sgdfuse_ros.errors import ConfigError, InputError  # noqa: E402
from sgdfuse_ros.hardware import cuda_available, physical_cores  # noqa: E402
from sgdfuse_ros.onnx import runtime  # noqa: E402
from sgdfuse_ros.onnx.export import export_module  # noqa: E402
from sgdfuse_ros.onnx.providers import usable_providers  # noqa: E402
from sgdfuse_ros.onnx.runtime import OnnxModule  # noqa: E402


class TinyFusion(torch.nn.Module):
    """Two images in, one fused image and a half-resolution map out (two outputs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1, stride=2), torch.nn.ReLU())
        self.head = torch.nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, ir, vis):
        x = torch.cat([ir, vis], 1)
        low = self.body(x)
        up = torch.nn.functional.interpolate(self.head(low), size=ir.shape[-2:],
                                             mode='bilinear', align_corners=False)
        return torch.sigmoid(up + ir - vis), low.mean(1, keepdim=True)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    model = TinyFusion().eval()
    path = tmp_path_factory.mktemp('onnx') / 'tiny.onnx'
    example = (torch.rand(1, 1, 32, 48), torch.rand(1, 1, 32, 48))
    export_module(model, example, path, ['ir', 'vis'], ['fused', 'low'])
    return model, path


def _reference(model, ir, vis):
    with torch.no_grad():
        out = model(torch.from_numpy(ir), torch.from_numpy(vis))
    return [o.numpy() for o in out]


@pytest.mark.parametrize('reuse', [False, True])
def test_dynamic_sizes_match_torch(exported, reuse):
    model, path = exported
    runner = OnnxModule(path, device='cpu', threads=1, reuse_outputs=reuse)
    assert runner.providers == ['CPUExecutionProvider']
    assert runner.input_names == ['ir', 'vis']
    rng = np.random.default_rng(1)
    for h, w in [(64, 80), (256, 320), (64, 80)]:   # two sizes, then back to the first
        for _ in range(2):                            # second call uses the bound buffers
            ir = rng.random((1, 1, h, w), dtype=np.float32)
            vis = rng.random((1, 1, h, w), dtype=np.float32)
            fused, low = runner(ir, vis)
            ref_fused, ref_low = _reference(model, ir, vis)
            assert fused.shape == (1, 1, h, w) and low.shape == (1, 1, h // 2, w // 2)
            assert np.max(np.abs(fused - ref_fused)) < 1e-3
            assert np.max(np.abs(low - ref_low)) < 1e-3


def test_outputs_not_overwritten_unless_reused(exported):
    model, path = exported
    rng = np.random.default_rng(2)
    a = [rng.random((1, 1, 48, 64), dtype=np.float32) for _ in range(4)]
    fresh = OnnxModule(path, device='cpu', threads=1)
    first = fresh(a[0], a[1])[0]
    kept = first.copy()
    fresh(a[2], a[3])
    assert np.array_equal(first, kept)  # a later call does not write into earlier results
    shared = OnnxModule(path, device='cpu', threads=1, reuse_outputs=True)
    shared(a[0], a[1])
    one = shared(a[0], a[1])[0]
    two = shared(a[2], a[3])[0]
    assert one is two  # one buffer per geometry, no per-frame allocation


def test_inputs_by_name_and_dtype_conversion(exported):
    model, path = exported
    runner = OnnxModule(path, device='cpu', threads=1)
    ir = np.random.default_rng(3).random((1, 1, 32, 32))  # float64: converted to float32
    vis = np.zeros((1, 1, 32, 32), np.float32)
    by_name = runner(vis=vis, ir=ir)[0]
    by_pos = runner(ir, vis)[0]
    assert np.allclose(by_name, by_pos)
    with pytest.raises(InputError):
        runner(ir)
    with pytest.raises(InputError):
        runner(ir=ir, thermal=vis)


def test_missing_or_corrupt_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        OnnxModule(tmp_path / 'absent.onnx', device='cpu')
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not an onnx file')
    with pytest.raises(ConfigError, match='cannot be loaded'):
        OnnxModule(bad, device='cpu')


def test_provider_choice_here_is_cpu_and_quiet(exported, caplog, capfd):
    """
    No usable CUDA here: only the CPU provider is requested.

    Nothing is logged as an error (onnxruntime would print 'Failed to load library ...' for a GPU
    provider it cannot load).
    """
    _, path = exported
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    if cuda_available():
        pytest.skip('this machine has CUDA: the CPU-only expectation does not apply')
    for device in ('auto', 'cpu'):
        assert usable_providers(device) == ['CPUExecutionProvider']
        runner = OnnxModule(path, device=device, threads=1)
        assert runner.providers == ['CPUExecutionProvider'] and runner.device == 'cpu'
        runner(np.zeros((1, 1, 16, 16), np.float32), np.zeros((1, 1, 16, 16), np.float32))
    out, err = capfd.readouterr()
    assert 'error' not in (out + err).lower(), out + err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_threads_follow_config(exported):
    _, path = exported
    cfg = {'device': 'cpu', 'device_fallback': True, 'threads': 1}
    assert OnnxModule.from_config(path, cfg).threads == 1
    cfg['threads'] = 0
    assert OnnxModule.from_config(path, cfg).threads == physical_cores() >= 1


# --- sgdfuse export ------------------------------------------------------------------------------

def test_export_reports_unavailable_parts_in_one_line(tmp_path, capsys):
    from sgdfuse_ros import cli

    rc = cli.main(['export', '--out', str(tmp_path), '--what', 'first-stage,refiner',
                   '--set', f"first_stage.weights={tmp_path / 'absent' / 'first_stage.pt'}",
                   '--set', f"refiner.weights={tmp_path / 'absent' / 'refiner.pt'}"])
    out, err = capsys.readouterr()
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert 'first-stage (' in lines[0] and 'refiner (' in lines[0]
    assert 'Traceback' not in err
    assert not list(tmp_path.glob('*.onnx'))


def test_export_unknown_part_is_one_line(tmp_path, capsys):
    from sgdfuse_ros import cli

    assert cli.main(['export', '--out', str(tmp_path), '--what', 'decoder']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'unknown part' in err[0]


def test_export_calls_the_owners_exporter(tmp_path, monkeypatch, capsys):
    """A module providing export_onnx(config, out_dir) is found by name and its file listed."""
    import sys
    import types

    from sgdfuse_ros import cli
    from sgdfuse_ros.cli import export

    def export_onnx(config, out_dir):
        assert 'first_stage.weights' in config
        return export_module(TinyFusion(), (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)),
                             out_dir / 'tiny.onnx', ['ir', 'vis'], ['fused', 'low'])

    fake = types.ModuleType('sgdfuse_test_fake_net')
    fake.export_onnx = export_onnx
    monkeypatch.setitem(sys.modules, 'sgdfuse_test_fake_net', fake)
    monkeypatch.setitem(export.PARTS, 'first-stage', 'sgdfuse_test_fake_net')
    assert cli.main(['export', '--out', str(tmp_path), '--what', 'first-stage']) == 0
    assert 'first-stage: ' in capsys.readouterr().out
    runner = OnnxModule(tmp_path / 'tiny.onnx', device='cpu', threads=1)
    assert runner(np.zeros((1, 1, 24, 40), np.float32),
                  np.zeros((1, 1, 24, 40), np.float32))[0].shape == (1, 1, 24, 40)


def test_thread_counts_switch_sessions_with_the_same_output(exported):
    model, path = exported
    runner = OnnxModule(path, device='cpu', threads=2, extra_threads=(1,), reuse_outputs=True)
    assert runner.thread_counts == [1, 2] and runner.threads == 2
    rng = np.random.default_rng(3)
    ir = rng.random((1, 1, 64, 80), dtype=np.float32)
    vis = rng.random((1, 1, 64, 80), dtype=np.float32)
    two = [np.array(o) for o in runner(ir, vis)]
    runtime.use_threads(1)  # every live module of the process
    assert runner.threads == 1
    assert runner.session.get_session_options().intra_op_num_threads == 1
    one = [np.array(o) for o in runner(ir, vis)]
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-6)
    runner.use_threads(3)  # a count it has no session for yet: built on first use
    assert runner.thread_counts == [1, 2, 3]
    np.testing.assert_allclose(runner(ir, vis)[0], two[0], atol=1e-6)
    assert runner.session.get_session_options().intra_op_num_threads == 3


def test_adaptive_policy_builds_every_candidate(exported):
    _, path = exported
    cfg = {'device': 'cpu', 'device_fallback': True, 'threads': 2, 'thread_policy': 'adaptive'}
    assert OnnxModule.from_config(path, cfg).thread_counts == [1, 2]
    options = OnnxModule.from_config(path, cfg).session.get_session_options()
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert options.get_session_config_entry('session.dynamic_block_base') == '4'
    cfg['thread_policy'] = 'fixed'
    assert OnnxModule.from_config(path, cfg).thread_counts == [2]
    cfg['thread_policy'] = 'library'  # the behaviour before: static shares
    options = OnnxModule.from_config(path, cfg).session.get_session_options()
    with pytest.raises(RuntimeError):  # not set at all
        options.get_session_config_entry('session.dynamic_block_base')
