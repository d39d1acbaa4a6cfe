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

"""ONNX export: the written graph is verified against torch at a second, odd size."""

import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')

from sgdfuse_ros.onnx.export import export_module  # noqa: E402


class PadToEight(torch.nn.Module):
    """
    Pad to a multiple of 8 only when needed (a Python branch on the shape).

    The tracer records the branch taken at the export size, so the graph only works at such sizes.
    """

    def forward(self, x):
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        y = torch.nn.functional.pad(x, (0, pw, 0, ph), mode='replicate') if ph or pw else x
        y = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(y, 8),
                                            scale_factor=8.0, mode='nearest')
        return y[..., :h, :w] + x


def test_export_verification_catches_baked_shapes(tmp_path):
    example = (torch.rand(1, 1, 32, 48),)
    with pytest.raises(ValueError, match='at 101x69'):
        export_module(PadToEight(), example, tmp_path / 'pad.onnx', ['x'], ['y'])
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    # the same graph is fine where it was traced, if the caller only promises that size
    export_module(PadToEight(), example, tmp_path / 'pad.onnx', ['x'], ['y'],
                  verify_sizes=[(32, 48)])
    assert (tmp_path / 'pad.onnx').is_file()
