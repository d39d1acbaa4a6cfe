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
The Segment Anything prior: one embedding per frame, thermal prompts, masks to a prior.

    provider = build_sam_provider(config, device)     # what the pipeline calls each frame
    prior = provider(thermal, visible_y, visible_bgr)  # SemanticPrior(source='sam' or 'thermal')

The model and its checkpoint, loaded safely (``weights_only=True``, every key and shape checked):
:mod:`sgdfuse_ros.prior.sam_checkpoint`.

Per frame (:class:`SamSegmenter`): the image encoder runs once (the costly part: ~31 CPU-seconds
for vit_b on the 2-core development CPU; on a GPU it runs in float16), then the prompt encoder
and mask decoder run for one batch of point prompts on the warm blobs
(:mod:`sgdfuse_ros.prior.prompts`) and, with ``prior.sam.auto_grid`` > 0, for the package's
``SamAutomaticMaskGenerator`` on a coarse grid, sharing the same embedding. The masks are
merged into the prior format by :func:`sgdfuse_ros.prior.merge.merge_masks`. The decoder runs
in torch or, with ``backend: onnx``, in onnxruntime (:mod:`sgdfuse_ros.onnx.sam_decoder`).

When and where this runs (every frame, or a worker thread with fallback) is the business of
:class:`sgdfuse_ros.prior.provider.PriorProvider`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .format import SemanticPrior
from .merge import MaskCandidate, merge_masks
from .prompts import PointPrompts, warm_point_prompts
from .provider import PriorProvider
from .sam_checkpoint import find_checkpoint, load_sam, missing_checkpoint_line, random_sam, \
    SAM_MODEL_TYPES, sam_package, TINY_TEST_MODEL  # noqa: F401
from .thermal import ThermalPrior
from ..errors import ConfigError

log = logging.getLogger('sgdfuse_ros')


class PriorCancelled(Exception):
    """
    A SAM computation stopped on request (worker shutdown or timeout) before a layer.

    :class:`SamFrameEncoder` puts a forward pre-hook on every linear and convolution layer of
    the model that raises this once cancelling was requested, so a running encoder or decoder
    stops within one layer (well under a second for vit_b on a CPU) rather than at its end.
    """


# --------------------------------------------------------------------------------------------
# one frame: embedding once, decoder calls, masks
# --------------------------------------------------------------------------------------------

class TorchMaskDecoder:
    """Prompt encoder + mask decoder + upscaling in torch."""

    name = 'torch'

    def __init__(self, model):
        self.model = model

    def __call__(self, features, coords, labels, input_size, original_size):
        """
        ``coords`` (B, N, 2) float in the model's input frame, ``labels`` (B, N).

        Returns (mask logits B x 3 x H x W at ``original_size``, predicted IoU B x 3), torch.
        """
        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(points=(coords, labels), boxes=None,
                                                      masks=None)
            low_res, iou = self.model.mask_decoder(
                image_embeddings=features, image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=True)
            logits = self.model.postprocess_masks(low_res, input_size, original_size)
        return logits, iou


class SamFrameEncoder:
    """
    SAM's image embedding for the current frame, and mask prediction from it.

    Also stands in for ``SamPredictor`` inside ``SamAutomaticMaskGenerator`` (``set_image`` of
    the frame already embedded is free, ``predict_torch`` goes to the chosen decoder), so the
    automatic grid and the thermal prompts share one embedding.
    """

    def __init__(self, model, decoder=None, encoder_dtype=None):
        self.model = model
        self.cancel = threading.Event()  # set: the running computation stops at its next layer
        cancel = self.cancel

        def stop_if_cancelled(module, inputs):  # a closure, not a method: deepcopy-safe
            if cancel.is_set():
                raise PriorCancelled('SAM computation cancelled')

        layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
        self._hooks = [m.register_forward_pre_hook(stop_if_cancelled)
                       for m in model.modules() if isinstance(m, layers)]
        self.decoder = decoder if decoder is not None else TorchMaskDecoder(model)
        self.transform = sam_package().utils.transforms.ResizeLongestSide(
            model.image_encoder.img_size)
        if encoder_dtype is None:
            encoder_dtype = next(model.image_encoder.parameters()).dtype
        self.encoder_dtype = encoder_dtype
        model.image_encoder.to(encoder_dtype)
        self.features = None
        self.original_size: Tuple[int, int] = (0, 0)
        self.input_size: Tuple[int, int] = (0, 0)
        self._image_key = None
        self._torch = torch

    @property
    def device(self):
        return self.model.device

    @staticmethod
    def _key(image: np.ndarray):
        return (image.__array_interface__['data'][0], image.shape, image.strides)

    def embed(self, image_rgb: np.ndarray) -> None:
        """Run the image encoder once for this frame (HxWx3 uint8 RGB)."""
        torch = self._torch
        resized = self.transform.apply_image(image_rgb)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        with torch.inference_mode():
            prepared = self.model.preprocess(tensor).to(self.encoder_dtype)
            self.features = self.model.image_encoder(prepared).float()
        self.original_size = tuple(image_rgb.shape[:2])
        self.input_size = tuple(resized.shape[:2])
        self._image_key = self._key(image_rgb)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise PriorCancelled('SAM computation cancelled')

    # --- the SamPredictor interface SamAutomaticMaskGenerator uses --------------------------
    def set_image(self, image: np.ndarray, image_format: str = 'RGB') -> None:
        if image_format != 'RGB':
            image = image[..., ::-1]
        if self.features is None or self._key(image) != self._image_key:
            self.embed(image)

    def reset_image(self) -> None:
        """Kept for the generator's sake; the frame's embedding stays until the next frame."""

    def forget(self) -> None:
        self.features, self._image_key = None, None

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None,
                      multimask_output=True, return_logits=False):
        if boxes is not None or mask_input is not None or not multimask_output:
            raise NotImplementedError('only multimask point prompts are used here')
        if self.features is None:
            raise RuntimeError('embed() a frame before predicting masks')
        self.check_cancel()
        logits, iou = self.decoder(self.features, point_coords, point_labels, self.input_size,
                                   self.original_size)
        masks = logits if return_logits else logits > self.model.mask_threshold
        return masks, iou, None

    def predict_points(self, points_xy: np.ndarray):
        """
        Decode one positive point per prompt into masks.

        ``points_xy`` (B, 2) in frame pixels -> (bool masks B x 3 x H x W, predicted IoU B x 3),
        numpy.
        """
        torch = self._torch
        coords = self.transform.apply_coords(points_xy.astype(np.float64), self.original_size)
        coords = torch.as_tensor(coords, dtype=torch.float32, device=self.device)[:, None, :]
        labels = torch.ones(coords.shape[:2], dtype=torch.int32, device=self.device)
        masks, iou, _ = self.predict_torch(coords, labels)
        return masks.cpu().numpy(), iou.float().cpu().numpy()


def sam_input_image(thermal: np.ndarray, visible_bgr: np.ndarray,
                    min_contrast: float = 8.0) -> Tuple[np.ndarray, str]:
    """
    Choose the picture SAM segments: the visible image, or the thermal one when dark.

    The visible image (RGB) is used unless it is too dark or flat to show anything (luma standard
    deviation below ``min_contrast`` grey levels, e.g. at night); then the thermal image is used as
    grey RGB. Returns (HxWx3 uint8 RGB, 'visible' or 'thermal').
    """
    if visible_bgr is not None:
        vis = visible_bgr if visible_bgr.ndim == 3 else np.repeat(visible_bgr[..., None], 3, 2)
        vis = np.ascontiguousarray(vis[..., :3][..., ::-1])
        luma = vis[::4, ::4].mean(axis=2)
        if float(luma.std()) >= min_contrast:
            return vis, 'visible'
    gray = np.clip(np.asarray(thermal, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2)), 'thermal'


class SamSegmenter:
    """One frame in, one SemanticPrior(source='sam') out, synchronously."""

    name = 'sam'

    def __init__(self, model, *, max_points: int = 8, auto_grid: int = 0, min_area: int = 64,
                 decoder=None, encoder_dtype=None, blob_finder: ThermalPrior = None,
                 max_mask_fraction: float = 0.5, min_blob_recall: float = 0.25,
                 grid_options: Optional[dict] = None):
        self.model = model
        self.encoder = SamFrameEncoder(model, decoder, encoder_dtype)
        self.max_points = int(max_points)
        self.auto_grid = int(auto_grid)
        self.min_area = int(min_area)
        self.blob_finder = blob_finder if blob_finder is not None else ThermalPrior()
        self.max_mask_fraction = float(max_mask_fraction)
        self.min_blob_recall = float(min_blob_recall)
        self.generator = None
        if self.auto_grid > 0:
            options = {'points_per_batch': 16, 'crop_n_layers': 0, 'output_mode': 'binary_mask'}
            options.update(grid_options or {})
            self.generator = sam_package().SamAutomaticMaskGenerator(
                model, points_per_side=self.auto_grid, **options)
            self.generator.predictor = self.encoder  # share the frame's embedding
        self.last_timings: Dict[str, float] = {}
        self.last_input = ''

    def request_cancel(self) -> None:
        """
        Ask a computation running in another thread to stop.

        The computation stops at its next step (it raises PriorCancelled); the next call starts
        afresh.
        """
        self.encoder.cancel.set()

    @property
    def decoder_name(self) -> str:
        return getattr(self.encoder.decoder, 'name', 'torch')

    def prompt_masks(self, prompts: PointPrompts) -> List[MaskCandidate]:
        """
        Pick one target mask per warm prompt.

        Of SAM's three, the best by predicted IoU weighted by how much of the warm blob it covers;
        masks covering more than ``max_mask_fraction`` of the frame (background grabs) or less than
        ``min_blob_recall`` of the blob are refused, and then the warm blob itself stands in, so a
        target is never lost.
        """
        if len(prompts) == 0:
            return []
        masks, iou = self.encoder.predict_points(prompts.points)
        h, w = masks.shape[-2:]
        limit = self.max_mask_fraction * h * w
        out = []
        for b in range(len(prompts)):
            blob = prompts.blob_mask(b)
            blob_area = max(int(np.count_nonzero(blob)), 1)
            best, best_score = None, -np.inf
            for k in range(masks.shape[1]):
                mask = masks[b, k]
                area = int(np.count_nonzero(mask))
                if area == 0 or area > limit:
                    continue
                recall = np.count_nonzero(mask & blob) / blob_area
                if recall < self.min_blob_recall:
                    continue
                score = float(iou[b, k]) * (0.5 + 0.5 * recall)
                if score > best_score:
                    best, best_score = mask, score
            if best is None:
                out.append(MaskCandidate(blob, 0.0, True))
            else:
                out.append(MaskCandidate(best, best_score, True))
        return out

    def grid_masks(self, image_rgb: np.ndarray) -> List[MaskCandidate]:
        if self.generator is None:
            return []
        records = self.generator.generate(image_rgb)
        return [MaskCandidate(np.asarray(r['segmentation'], bool), float(r['predicted_iou']),
                              False) for r in records]

    def __call__(self, thermal: np.ndarray, visible_bgr: np.ndarray = None) -> SemanticPrior:
        timings = {}
        tick = time.perf_counter()

        def lap(name):
            nonlocal tick
            now = time.perf_counter()
            timings[name] = (now - tick) * 1000.0
            tick = now

        self.encoder.cancel.clear()
        thermal = np.asarray(thermal, np.float32)
        image, self.last_input = sam_input_image(thermal, visible_bgr)
        try:
            self.encoder.embed(image)
            lap('encoder')
            prompts = warm_point_prompts(thermal, self.max_points, self.blob_finder)
            lap('prompts')
            candidates = self.prompt_masks(prompts)
            lap('decoder')
            candidates += self.grid_masks(image)
            lap('grid')
            self.encoder.check_cancel()
            prior = merge_masks(candidates, thermal.shape, self.min_area, prompts.blobs,
                                source=self.name)
            lap('merge')
        finally:
            self.encoder.forget()
        self.last_timings = timings
        return prior


# --------------------------------------------------------------------------------------------
# the builder the stage registry calls
# --------------------------------------------------------------------------------------------

def build_segmenter(config: dict, device: str, model_type: Optional[str] = None,
                    model=None, decoder: Optional[Callable] = None) -> SamSegmenter:
    """
    SAM from the config's checkpoint (or ``model``, already built), ready for frames.

    ``decoder(model)`` makes the mask decoder (the stage registry passes the ONNX one for
    ``backend: onnx``); None: torch's.
    """
    model_type = model_type or config['prior.sam.model_type']
    if model is None:
        path, tried = find_checkpoint(config['prior.sam.checkpoint'], model_type)
        if path is None:
            raise ConfigError(missing_checkpoint_line(model_type, tried))
        model = load_sam(path, model_type, device)
    return SamSegmenter(model, max_points=config['prior.sam.max_points'],
                        auto_grid=config['prior.sam.auto_grid'],
                        min_area=config['prior.sam.min_area'],
                        decoder=decoder(model) if decoder is not None else TorchMaskDecoder(model),
                        blob_finder=ThermalPrior.from_config(config))


def build_sam_provider(config: dict, device: str, *, model_type: Optional[str] = None,
                       model=None, decoder: Optional[Callable] = None):
    """
    Build the prior source for ``prior.source: sam``.

    A missing or mismatched checkpoint raises a one-line ConfigError with
    ``prior.on_sam_error: error``; with ``fallback`` it is logged loudly and the provider serves
    the thermal prior (source 'thermal'), its ``stats()['last_error']`` holding the reason.
    ``model_type``/``model`` let tests and benchmarks use the tiny or a random model.
    """
    fallback = ThermalPrior.from_config(config)
    try:
        segmenter = build_segmenter(config, device, model_type, model, decoder)
    except ConfigError as err:
        if config['prior.on_sam_error'] == 'error':
            raise
        # one warning, the only one: the provider starts on the fallback and says no more
        log.warning('SAM prior unavailable, serving the THERMAL FALLBACK prior instead '
                    '(prior.on_sam_error=fallback): %s', err)
        return PriorProvider.from_config(None, fallback, config, unavailable=str(err))
    provider = PriorProvider.from_config(segmenter, fallback, config)
    log.info('semantic prior: SAM %s on %s, decoder %s, %s, up to %d prompts%s',
             model_type or config['prior.sam.model_type'], device, segmenter.decoder_name,
             'every frame' if config['prior.every_frame'] else
             f"worker at {config['prior.rate_hz']:g} Hz", segmenter.max_points,
             f', grid {segmenter.auto_grid}x{segmenter.auto_grid}' if segmenter.auto_grid else '')
    return provider
