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

"""ONNX Runtime execution providers: GPU ones only where really usable, CPU always last."""

import pytest

pytest.importorskip('onnxruntime')

from sgdfuse_ros.errors import ConfigError  # noqa: E402
from sgdfuse_ros.onnx import providers  # noqa: E402
from sgdfuse_ros.onnx.providers import usable_providers  # noqa: E402


def test_provider_order_when_gpu_is_usable(monkeypatch):
    monkeypatch.setattr(providers, '_provider_library_loads', lambda name: True)
    everything = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert usable_providers('auto', available=everything, cuda_usable=True) == everything
    assert usable_providers('auto', tensorrt=False, available=everything, cuda_usable=True) == \
        everything[1:]
    assert usable_providers('cpu', available=everything, cuda_usable=True) == everything[2:]
    # listed but no usable device (this machine's case): CPU only
    assert usable_providers('auto', available=everything, cuda_usable=False) == everything[2:]
    # a provider whose library does not load is not requested
    monkeypatch.setattr(providers, '_provider_library_loads', lambda name: name != everything[0])
    assert usable_providers('auto', available=everything, cuda_usable=True) == everything[1:]
    with pytest.raises(ConfigError):
        usable_providers('tpu')


def test_gpu_provider_lists_of_an_onnxruntime_gpu_install(monkeypatch):
    """What onnxruntime-gpu reports on a desktop GPU, on Jetson, and with CUDA but no TensorRT."""
    monkeypatch.setattr(providers, '_provider_library_loads', lambda name: True)
    cpu, cuda, trt = 'CPUExecutionProvider', 'CUDAExecutionProvider', 'TensorrtExecutionProvider'
    # onnxruntime-gpu lists every provider it was built with, in its own order
    listed = [trt, cuda, cpu, 'AzureExecutionProvider']
    assert usable_providers('cuda', available=listed, cuda_usable=True) == [trt, cuda, cpu]
    assert usable_providers('auto', available=[cuda, cpu], cuda_usable=True) == [cuda, cpu]
    # TensorRT's library does not load (TensorRT not installed): CUDA, then CPU
    monkeypatch.setattr(providers, '_provider_library_loads', lambda name: name != trt)
    assert usable_providers('auto', available=listed, cuda_usable=True) == [cuda, cpu]
    # the CPU package (onnxruntime) on a GPU machine: CPU only, whatever torch sees
    assert usable_providers('auto', available=[cpu], cuda_usable=True) == [cpu]


def test_cuda_requested_without_gpu_provider_warns_and_runs_on_cpu(monkeypatch, caplog):
    with caplog.at_level('WARNING', logger='sgdfuse_ros'):
        assert usable_providers('cuda', available=['CPUExecutionProvider'],
                                cuda_usable=True) == ['CPUExecutionProvider']
    assert any('no usable GPU provider' in r.getMessage() for r in caplog.records)


def test_tensorrt_options_fp16_only_when_asked_and_its_own_engine_cache(tmp_path):
    from sgdfuse_ros.onnx.providers import _provider_entries
    chain = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    entries = _provider_entries(chain, tmp_path / 'trt_cache')
    assert entries[1:] == chain[1:]
    name, options = entries[0]
    assert name == chain[0] and options['trt_fp16_enable'] is False
    assert options['trt_engine_cache_path'] == str(tmp_path / 'trt_cache')
    name, options = _provider_entries(chain, tmp_path / 'trt_cache', fp16=True)[0]
    assert options['trt_fp16_enable'] is True and options['trt_engine_cache_enable'] is True
    assert options['trt_engine_cache_path'] == str(tmp_path / 'trt_cache_fp16')
    assert (tmp_path / 'trt_cache_fp16').is_dir()
    # no TensorRT: nothing to set
    assert _provider_entries(chain[1:], None, fp16=True) == chain[1:]


def test_tensorrt_fp16_parameter_reaches_the_provider_options(monkeypatch, tmp_path):
    """``tensorrt_fp16`` in the config -> OnnxModule -> TensorRT's options (GPU faked)."""
    from sgdfuse_ros.config import validate
    from sgdfuse_ros.onnx import runtime
    from sgdfuse_ros.parameters import defaults
    seen = {}

    class FakeModule(runtime.OnnxModule):

        def __init__(self, path, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(runtime, 'resolve_device', lambda config: 'cuda')
    config = defaults()
    config.update(validate({'tensorrt_fp16': True, 'backend': 'onnx'}))
    FakeModule.from_config(tmp_path / 'x.onnx', config)
    assert seen['trt_fp16'] is True and seen['device'] == 'cuda'
    config.update(validate({'tensorrt_fp16': False}))
    FakeModule.from_config(tmp_path / 'x.onnx', config)
    assert seen['trt_fp16'] is False
