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

"""The SAM decoder in onnxruntime agrees with the torch decoder on the same embedding."""

import numpy as np
from prior_scenes import config_with, warm_scene
import pytest
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.onnx.sam_decoder import export_decoder, OnnxMaskDecoder
from sgdfuse_ros.pipeline import stages
from sgdfuse_ros.prior.sam import (
    build_segmenter,
    random_sam,
    SamFrameEncoder,
    SamSegmenter,
    TINY_TEST_MODEL,
    TorchMaskDecoder,
)
import torch


@pytest.fixture(scope='module')
def model():
    return random_sam(TINY_TEST_MODEL, seed=3)


@pytest.fixture(scope='module')
def onnx_decoder(model):
    return OnnxMaskDecoder.from_model(model, 'cpu')


@pytest.mark.parametrize('shape', [(240, 320), (322, 478), (300, 200)])
@pytest.mark.parametrize('prompts, points', [(1, 1), (5, 1), (3, 2)])
def test_onnx_decoder_matches_torch(model, onnx_decoder, shape, prompts, points):
    _, visible, _ = warm_scene(shape)
    encoder = SamFrameEncoder(model)
    encoder.embed(np.ascontiguousarray(visible[..., ::-1]))
    rng = np.random.default_rng(prompts * 10 + points)
    xy = rng.uniform(0, 1, (prompts * points, 2)) * (shape[1] - 1, shape[0] - 1)
    coords = encoder.transform.apply_coords(xy, encoder.original_size).reshape(prompts, points, 2)
    coords = torch.as_tensor(coords, dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, 2, (prompts, points)), dtype=torch.int32)
    labels[:, 0] = 1
    args = (encoder.features, coords, labels, encoder.input_size, encoder.original_size)
    logits_t, iou_t = TorchMaskDecoder(model)(*args)
    logits_o, iou_o = onnx_decoder(*args)
    assert logits_o.shape == logits_t.shape == (prompts, 3) + shape
    assert iou_o.shape == iou_t.shape == (prompts, 3)
    assert float((logits_o - logits_t).abs().max()) < 1e-4
    assert float((iou_o - iou_t).abs().max()) < 1e-5
    assert torch.equal(logits_o > 0, logits_t > 0) or \
        float(((logits_o > 0) != (logits_t > 0)).float().mean()) < 1e-4


def test_segmenter_gives_the_same_prior_with_either_decoder(model, onnx_decoder):
    thermal, visible, _ = warm_scene((240, 320))
    options = {'max_points': 4, 'auto_grid': 2, 'min_area': 16,
               'grid_options': {'pred_iou_thresh': 0.0, 'stability_score_thresh': 0.0}}
    by_torch = SamSegmenter(model, **options)(thermal, visible)
    by_onnx = SamSegmenter(model, decoder=onnx_decoder, **options)(thermal, visible)
    assert np.mean(by_torch.labels == by_onnx.labels) > 0.999
    assert np.abs(by_torch.targets - by_onnx.targets).max() < 1e-3


def test_backend_onnx_in_the_config_selects_it(model, tmp_path):
    config = config_with({'prior.source': 'sam', 'backend': 'onnx', 'device': 'cpu'})
    segmenter = build_segmenter(config, 'cpu', TINY_TEST_MODEL, model=model,
                                decoder=stages.sam_decoder(config, 'cpu'))
    assert segmenter.decoder_name == 'onnx'
    assert segmenter.encoder.decoder.providers == ['CPUExecutionProvider']
    path = tmp_path / 'sam_decoder.onnx'
    export_decoder(model, path)
    import onnx
    onnx.checker.check_model(str(path))
    from_file = OnnxMaskDecoder(path, 'cpu')
    assert from_file.img_size == model.image_encoder.img_size


def test_sgdfuse_export_writes_the_decoder_of_the_configured_checkpoint(tmp_path):
    import onnxruntime
    from sgdfuse_ros.onnx.sam_decoder import export_onnx, INPUT_NAMES
    from sgdfuse_ros.prior.sam import random_sam, TINY_TEST_MODEL
    import torch

    checkpoint = tmp_path / 'tiny.pth'
    torch.save(random_sam(TINY_TEST_MODEL, seed=1).state_dict(), checkpoint)
    out = export_onnx({'prior.sam.checkpoint': str(checkpoint),
                       'prior.sam.model_type': TINY_TEST_MODEL}, tmp_path / 'onnx')
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    assert names[:3] == ['image_embeddings', 'point_coords', 'point_labels']
    assert set(names) <= set(INPUT_NAMES)
    with pytest.raises(ConfigError, match='prior.sam.checkpoint is empty'):
        export_onnx({'prior.sam.checkpoint': '', 'prior.sam.model_type': 'vit_b'}, tmp_path)
