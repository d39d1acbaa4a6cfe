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
SAM's prompt encoder + mask decoder in ONNX, run by onnxruntime (``backend: onnx``).

The graph is the package's ``segment_anything.utils.onnx.SamOnnxModel`` (prompt encoding and
mask decoding, all four mask outputs), exported with ``torch.onnx.export(..., dynamo=False,
opset_version=17)`` with a dynamic prompt batch and a dynamic number of points per prompt. Its
upscaling to the frame size is left out of the graph and done in torch, as the torch path does
(``Sam.postprocess_masks``): the tracer bakes the crop of the padded square into the graph as a
constant of the example frame's aspect ratio, which shifts masks on frames of any other aspect
ratio (a quarter of the mask pixels flipped on a 478x322 frame when we tried). The graph takes
the image embedding the torch image encoder produced: only the decoder moves to onnxruntime
(the encoder is one call per frame, the decoder runs per prompt batch, and onnxruntime runs it
about twice as fast as torch on the development CPU: ``benchmarks/results/prior_cpu.md``).

The export takes a second or two and is done in memory when the provider is built (nothing is
written next to the checkpoint); :func:`export_decoder` writes a file for other runtimes.
Providers and threads come from :mod:`sgdfuse_ros.onnx.providers` (CUDA only where torch sees
a usable
GPU and onnxruntime's CUDA library loads, so CPU-only machines never see provider errors).
"""

from __future__ import annotations

import copy
import io
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Union
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch.nn import functional as F

from .providers import session_options, usable_providers
from ..errors import ConfigError, error_line
from ..prior.sam import load_sam
from ..prior.sam_checkpoint import sam_package

log = logging.getLogger('sgdfuse_ros')

INPUT_NAMES = ['image_embeddings', 'point_coords', 'point_labels', 'mask_input',
               'has_mask_input', 'orig_im_size']
OUTPUT_NAMES = ['masks', 'iou_predictions', 'low_res_masks']
OPSET = 17


def _example_inputs(model):
    embed_dim = model.prompt_encoder.embed_dim
    grid = model.prompt_encoder.image_embedding_size
    mask_size = [4 * grid[0], 4 * grid[1]]
    return (torch.randn(1, embed_dim, *grid), torch.rand(2, 3, 2) * model.image_encoder.img_size,
            torch.randint(0, 2, (2, 3)).float(), torch.zeros(1, 1, *mask_size),
            torch.zeros(1), torch.tensor([480.0, 640.0]))


def _decoder_parts(model):
    """
    Copy the prompt encoder and mask decoder of ``model`` to the CPU in float32.

    That is what SamOnnxModel reads of a Sam; the image encoder stays where it is.
    """
    parts = torch.nn.Module()
    parts.prompt_encoder = copy.deepcopy(model.prompt_encoder).cpu().float()
    parts.mask_decoder = copy.deepcopy(model.mask_decoder).cpu().float()
    parts.image_encoder = SimpleNamespace(img_size=model.image_encoder.img_size)
    parts.mask_threshold = model.mask_threshold
    return parts.eval()


def _decoder_graph(model):
    class SamOnnxDecoder(sam_package().utils.onnx.SamOnnxModel):
        """SamOnnxModel returning the low-resolution masks (upscaled outside the graph)."""

        def mask_postprocessing(self, masks, orig_im_size):
            return masks

    return SamOnnxDecoder(_decoder_parts(model), return_single_mask=False).eval()


def upscale_masks(low_res, img_size: int, input_size, original_size):
    """Low-resolution mask logits -> the frame's size, exactly as ``Sam.postprocess_masks``."""
    masks = F.interpolate(low_res, (img_size, img_size), mode='bilinear', align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, tuple(original_size), mode='bilinear', align_corners=False)


def export_decoder(model, target: Union[str, Path, io.BytesIO]) -> None:
    """
    Write ``model``'s prompt encoder + mask decoder as ONNX to a path or a byte buffer.

    Inputs: image_embeddings (1, C, h, w), point_coords (B, N, 2) in the model's input frame,
    point_labels (B, N) (1 foreground, 0 background, -1 padding), mask_input (1, 1, 4h, 4w),
    has_mask_input (1,) (orig_im_size is traced out: the graph does not upscale). Outputs:
    low-resolution mask logits (B, 4, 4h, 4w) as masks and low_res_masks, iou_predictions
    (B, 4).
    """
    wrapped = _decoder_graph(model)
    dynamic = {'point_coords': {0: 'prompts', 1: 'points'},
               'point_labels': {0: 'prompts', 1: 'points'}}
    with warnings.catch_warnings():  # tracer chatter about python values in the graph
        warnings.simplefilter('ignore')
        torch.onnx.export(wrapped, _example_inputs(model), target, input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_axes=dynamic, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)


class OnnxMaskDecoder:
    """Same call as :class:`sgdfuse_ros.prior.sam.TorchMaskDecoder`, run by onnxruntime."""

    name = 'onnx'

    def __init__(self, model_bytes_or_path, device: str = 'cpu', threads: int = 0,
                 img_size: int = 0):
        """
        Open an onnxruntime session on the exported decoder.

        ``img_size``: the image encoder's input side (1024 for SAM; default: 16 x the embedding
        side, SAM's patch size).
        """
        options = session_options(threads)
        options.log_severity_level = 3  # errors only
        source = str(model_bytes_or_path) if isinstance(model_bytes_or_path, Path) \
            else model_bytes_or_path
        providers = usable_providers(device, tensorrt=False)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as err:
            raise ConfigError('onnxruntime cannot load the SAM decoder: '
                              f'{error_line(err)}') from None
        self.providers = self.session.get_providers()
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        grid = self._inputs['image_embeddings'].shape[2:]  # (h, w) of the embedding
        self.img_size = int(img_size) if img_size else 16 * int(grid[0])
        self._empty_mask = np.zeros([1, 1, 4 * int(grid[0]), 4 * int(grid[1])], np.float32)
        log.debug('SAM decoder on onnxruntime, providers %s', self.providers)

    @classmethod
    def from_model(cls, model, device: str = 'cpu', threads: int = 0) -> 'OnnxMaskDecoder':
        """Export ``model``'s decoder in memory and open it."""
        buffer = io.BytesIO()
        try:
            export_decoder(model, buffer)
        except Exception as err:
            raise ConfigError(f'cannot export the SAM decoder to ONNX: {error_line(err)}') \
                from None
        return cls(buffer.getvalue(), device, threads, model.image_encoder.img_size)

    def __call__(self, features, coords, labels, input_size, original_size):
        """
        Decode point prompts with onnxruntime.

        ``features`` (1, C, h, w) torch, ``coords`` (B, N, 2) in the model's input frame,
        ``labels`` (B, N) -> (mask logits B x 3 x H x W at ``original_size``, IoU B x 3) as CPU
        torch tensors; ``input_size`` is the frame's size inside the encoder's padded square.
        """
        coords = np.asarray(coords.detach().cpu().numpy(), np.float32)
        labels = np.asarray(labels.detach().cpu().numpy(), np.float32)
        # torch's prompt encoder adds a "not a point" (label -1) to point prompts without a box;
        # the ONNX graph leaves that to the caller
        batch = coords.shape[0]
        coords = np.concatenate([coords, np.zeros((batch, 1, 2), np.float32)], axis=1)
        labels = np.concatenate([labels, -np.ones((batch, 1), np.float32)], axis=1)
        feeds = {
            'image_embeddings': features.detach().float().cpu().numpy(),
            'point_coords': coords,
            'point_labels': labels,
            'mask_input': self._empty_mask,
            'has_mask_input': np.zeros(1, np.float32),
            'orig_im_size': np.asarray(original_size, np.float32),
        }
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}  # unused ones get dropped
        masks, iou, _ = self.session.run(None, feeds)
        # output 0 is the single-mask token; 1..3 are the multimask outputs SAM's predictor uses
        logits = upscale_masks(torch.from_numpy(masks[:, 1:]), self.img_size, input_size,
                               original_size)
        return logits, torch.from_numpy(iou[:, 1:])


def export_onnx(config: dict, out_dir) -> Path:
    """``sgdfuse export``: the configured SAM checkpoint's prompt encoder + mask decoder."""
    checkpoint = config.get('prior.sam.checkpoint', '')
    if not checkpoint:
        raise ConfigError('prior.sam.checkpoint is empty: set it '
                          "(--set prior.sam.checkpoint=PATH) to export SAM's decoder")
    model = load_sam(checkpoint, config['prior.sam.model_type'], 'cpu')
    out = Path(out_dir) / f"sam_{config['prior.sam.model_type']}_decoder.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    export_decoder(model, buffer)
    tmp = out.with_name(out.name + '.tmp')
    try:  # whole or not at all, whatever stops it (an error, a signal)
        tmp.write_bytes(buffer.getbuffer())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
