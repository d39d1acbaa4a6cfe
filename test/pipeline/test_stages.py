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

"""The stage registry: the one place that chooses torch or ONNX Runtime."""

from sgdfuse_ros.pipeline import stages
from sgdfuse_ros.pipeline.stages import resolve_backend


def test_backend_auto(monkeypatch):
    monkeypatch.setattr(stages, 'onnx_available', lambda: True)
    assert resolve_backend({'backend': 'auto'}, 'cpu') == 'onnx'
    assert resolve_backend({'backend': 'auto'}, 'cuda') == 'torch'
    assert resolve_backend({'backend': 'torch'}, 'cpu') == 'torch'
    assert resolve_backend({'backend': 'onnx'}, 'cuda') == 'onnx'
    monkeypatch.setattr(stages, 'onnx_available', lambda: False)
    assert resolve_backend({'backend': 'auto'}, 'cpu') == 'torch'
