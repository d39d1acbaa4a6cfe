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
The SAM model: built from the ``segment_anything`` registry, its checkpoint loaded safely.

The checkpoint is read with ``torch.load(..., weights_only=True)`` (a pickle cannot run code),
checked against the architecture the registry builds for ``prior.sam.model_type`` (every key,
every shape; a vit_h file given as vit_b is named as such), and assigned into that model. Any
problem is one ``ConfigError`` line naming the file. :func:`random_sam` and
``TINY_TEST_MODEL`` give tests and benchmarks a model without a checkpoint.

Which file: :func:`find_checkpoint` -- ``prior.sam.checkpoint`` when set, else
``$SGDFUSE_SAM_CHECKPOINT`` (a file, or a folder searched like models/), else the first of the
names Meta publishes for the model type (``sam_vit_b_01ec64.pth``, ...) found in models/.
``vit_t`` is MobileSAM's TinyViT encoder with SAM's prompt encoder and mask decoder, built by
the ``mobile_sam`` package (PyPI: mobilesam-mirror, which needs timm), same interface.
"""

from __future__ import annotations

from functools import partial
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..config import check_model_file, models_dir, tensor_problem
from ..errors import ConfigError, first_line, torch_file_problem

log = logging.getLogger('sgdfuse_ros')

SAM_MODEL_TYPES = ('vit_b', 'vit_l', 'vit_h')
MOBILE_SAM = 'vit_t'  # MobileSAM's encoder (package mobile_sam), SAM's decoder
MODEL_TYPES = SAM_MODEL_TYPES + (MOBILE_SAM,)
# The file names the checkpoints are published under (segment-anything's README, "Model
# Checkpoints"; MobileSAM's weights/mobile_sam.pt), then the short names looked for before.
CHECKPOINT_NAMES = {
    'vit_b': ('sam_vit_b_01ec64.pth', 'sam_vit_b.pth'),
    'vit_l': ('sam_vit_l_0b3195.pth', 'sam_vit_l.pth'),
    'vit_h': ('sam_vit_h_4b8939.pth', 'sam_vit_h.pth'),
    MOBILE_SAM: ('mobile_sam.pt', 'sam_vit_t.pth'),
}
CHECKPOINT_ENV = 'SGDFUSE_SAM_CHECKPOINT'
CHECKPOINT_SOURCE = ('https://github.com/facebookresearch/segment-anything#model-checkpoints '
                     '(MobileSAM: https://github.com/ChaoningZhang/MobileSAM, weights/)')
TINY_TEST_MODEL = 'tiny_test'  # small SAM for tests and benchmarks; not offered to users
ENCODER_WIDTHS = {768: 'vit_b', 1024: 'vit_l', 1280: 'vit_h'}
ENCODER_KEY = 'image_encoder.patch_embed.proj.weight'


def sam_package():
    """
    Return the ``segment_anything`` package (with its ``utils.onnx``), imported on first use.

    It is an optional dependency (``pip install 'sgdfuse_ros[sam]'``): a configuration without
    SAM, or whose checkpoint is missing (the thermal prior serves, with a warning), never needs
    it.
    """
    # optional [sam] extra: imported once a SAM model is built, by this function only
    import segment_anything.utils.onnx
    return segment_anything


def build_tiny_test_sam(checkpoint=None):
    """
    Build the SAM architecture shrunk to ~80k parameters, for fast tests only.

    Same classes as the registry's: 128-px input, 2 transformer blocks of width 32, 32-channel
    embedding.
    """
    if checkpoint is not None:
        raise ValueError('the tiny test model is loaded through load_sam(), not the registry')
    image_size, patch, width, embed = 128, 16, 32, 32
    grid = image_size // patch
    modeling = sam_package().modeling
    return modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=2, embed_dim=width, img_size=image_size, mlp_ratio=2,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=patch,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1], window_size=4,
            out_chans=embed),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=embed, image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size), mask_in_chans=4),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(depth=1, embedding_dim=embed, mlp_dim=64,
                                                   num_heads=2),
            transformer_dim=embed, iou_head_depth=2, iou_head_hidden_dim=32),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def find_checkpoint(value: str, model_type: str) -> Tuple[Optional[Path], List[Path]]:
    """
    Return the checkpoint to load for ``prior.sam.checkpoint`` = ``value``, and the places tried.

    ``value`` set: that path (checked when loaded). Empty: ``$SGDFUSE_SAM_CHECKPOINT`` (a
    file; or a folder, searched for the names below), else models/, searched for
    :data:`CHECKPOINT_NAMES` of ``model_type`` (Meta's published name first). None when nothing
    is found.
    """
    if value:
        return Path(value).expanduser(), []
    folders = []
    env = os.environ.get(CHECKPOINT_ENV, '').strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            return path, []
        folders.append(path)
    folders.append(models_dir())
    tried = [folder / name for folder in folders
             for name in CHECKPOINT_NAMES.get(model_type, (f'sam_{model_type}.pth',))]
    return next((path for path in tried if path.is_file()), None), tried


def missing_checkpoint_line(model_type: str, tried: List[Path]) -> str:
    """One line: no checkpoint found, where it was looked for, where it comes from."""
    names = CHECKPOINT_NAMES.get(model_type, (f'sam_{model_type}.pth',))
    folders = ', '.join(dict.fromkeys(str(path.parent) for path in tried))
    return (f'prior.source=sam needs a SAM {model_type} checkpoint: set prior.sam.checkpoint '
            f'or ${CHECKPOINT_ENV}, or put {names[0]} in {folders} (none found there); '
            f'checkpoints: {CHECKPOINT_SOURCE}')


def _mobile_sam_builder():
    try:
        from mobile_sam import sam_model_registry  # optional package: MobileSAM (vit_t)
    except ImportError as err:
        raise ConfigError(f'prior.sam.model_type {MOBILE_SAM} (MobileSAM) needs the mobile_sam '
                          f'package: pip install mobilesam-mirror timm ({first_line(err)})') \
            from None
    return sam_model_registry[MOBILE_SAM]


def model_builders(model_type: Optional[str] = None) -> dict:
    """
    Map model type -> builder.

    The three of ``segment_anything.sam_model_registry``, plus the tiny test model, plus
    MobileSAM's when ``model_type`` asks for it (its package is imported only then).
    """
    registry = sam_package().sam_model_registry
    builders = {name: registry[name] for name in SAM_MODEL_TYPES}
    builders[TINY_TEST_MODEL] = build_tiny_test_sam
    if model_type == MOBILE_SAM:
        builders[MOBILE_SAM] = _mobile_sam_builder()
    return builders


def _build(model_type: str, device: Optional[str] = None):
    builders = model_builders(model_type)
    if model_type not in builders:
        raise ConfigError(f"unknown SAM model type '{model_type}' "
                          f"(known: {', '.join(MODEL_TYPES)})")
    if device == 'meta':
        with torch.device('meta'):
            return builders[model_type]()
    return builders[model_type]()


def read_state_dict(path: Path, expected: str = 'a SAM checkpoint') -> Dict[str, 'object']:
    """Read the tensors of a checkpoint file without running any pickled code."""
    path = check_model_file(path, 'SAM checkpoint', expected)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # corrupt, truncated, not a torch file, or unsafe pickle content
        raise ConfigError(f'SAM checkpoint {path} cannot be read safely as {expected} '
                          f'({torch_file_problem(err, path)})') from None
    if isinstance(state, dict):
        for wrapper in ('model', 'state_dict'):  # common training-script wrappers
            inner = state.get(wrapper)
            if isinstance(inner, dict) and ENCODER_KEY not in state:
                state = inner
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ConfigError(f'SAM checkpoint {path} is not a state dict of tensors '
                          f'(expected {expected})')
    for name, tensor in state.items():
        problem = tensor_problem(tensor)
        if problem:
            raise ConfigError(f'SAM checkpoint {path}: {name[:80]} {problem} (expected '
                              f'{expected})')
    return state


def guess_model_type(state: dict) -> Optional[str]:
    """vit_b / vit_l / vit_h from the encoder width of a SAM state dict, None if unknown."""
    weight = state.get(ENCODER_KEY)
    if weight is None or weight.ndim != 4:
        return None
    return ENCODER_WIDTHS.get(int(weight.shape[0]))


def check_state_dict(state: dict, model, path: Path, model_type: str) -> None:
    """Every key and shape of ``model`` present in ``state``, nothing extra; else ConfigError."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected
             if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    not_float = [k for k in expected if k in state and expected[k].is_floating_point()
                 and not state[k].is_floating_point()]  # (batch-norm counters are integers)
    if not (missing or unexpected or wrong or not_float):
        return
    guess = guess_model_type(state)
    if guess and guess != model_type:
        what = f'looks like a {guess} checkpoint'
    elif guess is None and not any(k.startswith('image_encoder.') for k in state):
        what = 'has no SAM image encoder weights'
    else:
        what = 'does not match'
    details = []
    if wrong:
        k = wrong[0]
        details.append(f'{len(wrong)} shape mismatches, e.g. {k} {tuple(state[k].shape)} vs '
                       f'{tuple(expected[k].shape)}')
    if missing:
        details.append(f'{len(missing)} missing keys, e.g. {missing[0]}')
    if unexpected:
        details.append(f'{len(unexpected)} unexpected keys, e.g. {unexpected[0]}')
    if not_float:
        details.append(f'{len(not_float)} non-float tensors, e.g. {not_float[0]}')
    raise ConfigError(f'SAM checkpoint {path} {what}, expected {model_type} '
                      f"(prior.sam.model_type): {'; '.join(details)}")


def load_sam(checkpoint, model_type: str = 'vit_b', device: str = 'cpu'):
    """
    Load a SAM model of ``model_type`` with the weights of ``checkpoint`` (eval mode).

    The model is placed on ``device``.

    The architecture comes from the registry (built on the meta device: no initialisation
    cost), the weights are checked, then assigned. On CUDA the image encoder is kept in float16
    (see :class:`SamFrameEncoder`); everything else stays float32.
    """
    path = Path(checkpoint).expanduser()
    state = read_state_dict(path, f'a SAM {model_type} state dict')
    # on the meta device (no time spent initialising weights about to be replaced), except
    # MobileSAM, whose TinyViT reads tensor values while it is built (and is small)
    model = _build(model_type, device=None if model_type == MOBILE_SAM else 'meta')
    check_state_dict(state, model, path, model_type)
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
                if t.is_meta]
    if leftover:  # a tensor the state dict does not carry: build for real instead
        model = _build(model_type)
        model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    model.to(device)
    if device == 'cuda':
        model.image_encoder.half()
    return model


def random_sam(model_type: str = TINY_TEST_MODEL, seed: int = 0, device: str = 'cpu'):
    """Build a SAM of ``model_type`` with random weights (tests and speed benchmarks only)."""
    torch.manual_seed(seed)
    model = _build(model_type).eval().requires_grad_(False)
    model.to(device)
    if device == 'cuda':
        model.image_encoder.half()
    return model
