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
Writes torch modules as ONNX files and checks them against the module.

:func:`export_module` writes a ``torch.nn.Module`` as an ONNX file (opset 17, TorchScript
exporter) whose image inputs and outputs have dynamic height and width, so one file serves every
camera resolution, and verifies it at two sizes with :func:`max_abs_difference`. Generic: the
learned stages' own exporters (:mod:`sgdfuse_ros.onnx.fusion_networks`) call it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union
import warnings

import numpy as np
import onnx
import torch

from .runtime import OnnxModule
from ..errors import error_line

OPSET = 17


# --- exporting torch modules ---------------------------------------------------------------------

def export_module(module, example_inputs: Sequence, path: Union[str, os.PathLike],
                  input_names: Sequence[str], output_names: Sequence[str],
                  dynamic_batch: bool = False, opset: int = OPSET,
                  verify_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                  atol: float = 1e-3) -> Path:
    """
    Write ``module`` as ONNX with dynamic height/width on every 4-D input and output.

    ``example_inputs``: torch tensors of a typical size. The module is exported in eval mode and
    the file is checked with the ONNX checker, then **verified**: ONNX Runtime (CPU) and torch
    must agree within ``atol`` at each (height, width) of ``verify_sizes`` (4-D inputs resized
    to it, random values in [0, 1]). The default checks the example size and an odd size 37 rows
    and 53 columns larger: tracing records Python arithmetic on shapes (padding to a multiple,
    cropping back) as constants, so a graph can be right at the export size and wrong at every
    other; cameras come in any size. A network that needs sizes of a multiple must pad outside
    the graph and pass such sizes here. Raises ``ValueError`` naming the size that disagrees.

    Uses the TorchScript exporter (``dynamo=False``): it handles the pipeline's networks'
    data-independent control flow and needs no extra packages.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = tuple(example_inputs)
    axes: Dict[str, Dict[int, str]] = {}
    for name, tensor in zip(input_names, examples):
        if getattr(tensor, 'dim', lambda: 0)() == 4:
            axes[name] = {2: 'height', 3: 'width'}
            if dynamic_batch:
                axes[name][0] = 'batch'
    with torch.no_grad():
        sample_out = module.eval()(*examples)
    outs = sample_out if isinstance(sample_out, (tuple, list)) else (sample_out,)
    if len(outs) != len(output_names):
        raise ValueError(f'module returns {len(outs)} outputs, {len(output_names)} names given')
    for name, tensor in zip(output_names, outs):
        if tensor.dim() == 4:
            axes[name] = {2: 'height', 3: 'width'}
            if dynamic_batch:
                axes[name][0] = 'batch'
    tmp = path.with_suffix(path.suffix + '.tmp')
    if verify_sizes is None:
        four_d = [t for t in examples if getattr(t, 'dim', lambda: 0)() == 4]
        if four_d:
            h, w = four_d[0].shape[-2:]
            verify_sizes = [(int(h), int(w)), (int(h) + 37, int(w) + 53)]
        else:
            verify_sizes = []
    try:  # whatever stops it (an error, a signal), no half-written file is left
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation/tracer notes
            torch.onnx.export(module, examples, str(tmp), dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=axes, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
        if verify_sizes:
            runner = OnnxModule(tmp, device='cpu', threads=1)
            generator = torch.Generator().manual_seed(0)
            for h, w in verify_sizes:
                inputs = [torch.rand(tuple(t.shape[:-2]) + (h, w), generator=generator)
                          .to(device=t.device, dtype=t.dtype)
                          if getattr(t, 'dim', lambda: 0)() == 4 else t for t in examples]
                try:
                    error = max_abs_difference(module, runner, inputs)
                except Exception as err:  # shapes baked in: ORT or the comparison fails
                    raise ValueError(f'ONNX export of {type(module).__name__} fails at {w}x{h} '
                                     f'({error_line(err, 160)})') from None
                if not error <= atol:
                    raise ValueError(f'ONNX export of {type(module).__name__} disagrees with '
                                     f'torch at {w}x{h} (max abs difference {error:.3g} > '
                                     f'{atol:g}): shape arithmetic baked into the graph?')
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


def max_abs_difference(module, runner: OnnxModule, inputs: Sequence) -> float:
    """Largest absolute difference between ``module(*inputs)`` (torch) and the ONNX ``runner``."""
    with torch.no_grad():
        expected = module.eval()(*inputs)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    got = runner(*[t.detach().cpu().numpy() for t in inputs])
    got = got if isinstance(got, tuple) else (got,)
    return max(float(np.max(np.abs(e.detach().cpu().numpy() - g))) for e, g in zip(expected, got))
