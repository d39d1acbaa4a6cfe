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
