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
Which SAM checkpoint is loaded, and MobileSAM (``prior.sam.model_type: vit_t``).

The default search: ``prior.sam.checkpoint``, else ``$SGDFUSE_SAM_CHECKPOINT`` (a file or a
folder), else models/, for the file names Meta publishes. MobileSAM's loading is tested with
weights made here (random), where its package (PyPI: mobilesam-mirror) is installed.
"""

import sys

from prior_scenes import config_with, warm_scene
import pytest
from sgdfuse_ros.errors import ConfigError
from sgdfuse_ros.prior import sam_checkpoint
from sgdfuse_ros.prior.sam import build_sam_provider, load_sam, random_sam, TINY_TEST_MODEL
from sgdfuse_ros.prior.sam_checkpoint import CHECKPOINT_ENV, find_checkpoint, \
    missing_checkpoint_line
import torch

META_NAMES = {'vit_b': 'sam_vit_b_01ec64.pth', 'vit_l': 'sam_vit_l_0b3195.pth',
              'vit_h': 'sam_vit_h_4b8939.pth'}


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Give an empty models/ folder in place of the package's, and no $SGDFUSE_SAM_CHECKPOINT."""
    folder = tmp_path / 'models'
    folder.mkdir()
    monkeypatch.setattr(sam_checkpoint, 'models_dir', lambda: folder)
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    return folder


@pytest.mark.parametrize('model_type', sorted(META_NAMES))
def test_meta_file_names_are_found_in_models(models, model_type):
    assert find_checkpoint('', model_type)[0] is None
    (models / f'sam_{model_type}.pth').write_bytes(b'x')  # the short name still works
    assert find_checkpoint('', model_type)[0] == models / f'sam_{model_type}.pth'
    (models / META_NAMES[model_type]).write_bytes(b'x')  # Meta's name comes first
    path, tried = find_checkpoint('', model_type)
    assert path == models / META_NAMES[model_type]
    assert tried[0] == models / META_NAMES[model_type]


def test_parameter_then_environment_then_models(models, tmp_path, monkeypatch):
    (models / META_NAMES['vit_b']).write_bytes(b'x')
    given = tmp_path / 'elsewhere.pth'
    assert find_checkpoint(str(given), 'vit_b') == (given, [])  # set: used as given
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / 'from_env.pth'))  # a file
    assert find_checkpoint('', 'vit_b')[0] == tmp_path / 'from_env.pth'
    folder = tmp_path / 'checkpoints'  # a folder: searched before models/
    folder.mkdir()
    monkeypatch.setenv(CHECKPOINT_ENV, str(folder))
    assert find_checkpoint('', 'vit_b')[0] == models / META_NAMES['vit_b']
    (folder / META_NAMES['vit_b']).write_bytes(b'x')
    assert find_checkpoint('', 'vit_b')[0] == folder / META_NAMES['vit_b']


def test_nothing_found_is_one_line_with_where_to_get_it(models):
    path, tried = find_checkpoint('', 'vit_h')
    line = missing_checkpoint_line('vit_h', tried)
    assert path is None and '\n' not in line
    assert f'put sam_vit_h_4b8939.pth in {models} (none found there)' in line
    assert '$SGDFUSE_SAM_CHECKPOINT' in line
    assert 'https://github.com/facebookresearch/segment-anything#model-checkpoints' in line


def test_provider_loads_the_checkpoint_found_in_the_environment_folder(tmp_path, monkeypatch,
                                                                       models):
    folder = tmp_path / 'checkpoints'
    folder.mkdir()
    model = random_sam(TINY_TEST_MODEL, seed=3)
    torch.save(model.state_dict(), folder / f'sam_{TINY_TEST_MODEL}.pth')
    monkeypatch.setenv(CHECKPOINT_ENV, str(folder))
    config = config_with({'prior.source': 'sam', 'prior.on_sam_error': 'error',
                          'prior.every_frame': True, 'device': 'cpu'})
    provider = build_sam_provider(config, 'cpu', model_type=TINY_TEST_MODEL)
    try:
        loaded = provider.compute.model.state_dict()
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded[name], tensor), name
        thermal, visible, _ = warm_scene((120, 160))
        assert provider(thermal, None, visible).source == 'sam'
    finally:
        provider.close()


def test_mobile_sam_without_its_package_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'mobile_sam', None)  # as if not installed
    path = tmp_path / 'mobile_sam.pt'
    torch.save(random_sam(TINY_TEST_MODEL).state_dict(), path)
    with pytest.raises(ConfigError) as err:
        load_sam(path, 'vit_t')
    assert '\n' not in str(err.value)
    assert 'needs the mobile_sam package: pip install mobilesam-mirror timm' in str(err.value)


@pytest.fixture(scope='module')
def mobile_sam_checkpoint(tmp_path_factory):
    pytest.importorskip('timm')
    pytest.importorskip('mobile_sam')
    model = random_sam('vit_t', seed=5)  # built by mobile_sam's registry, random weights
    path = tmp_path_factory.mktemp('mobile_sam') / 'mobile_sam.pt'
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def test_mobile_sam_checkpoint_loads_and_segments(mobile_sam_checkpoint):
    path, state = mobile_sam_checkpoint
    model = load_sam(path, 'vit_t')
    assert type(model.image_encoder).__name__ == 'TinyViT'
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name
    # the same interface: a frame through the package's segmenter (preprocessing, prompt
    # encoder, mask decoder, mask upscaling are MobileSAM's own). The TinyViT forward itself
    # (about 5 s of CPU at 1024x1024) is replaced by a fixed embedding of its output's shape.
    assert model.image_encoder.img_size == 1024
    embedding = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(0))
    seen = []
    model.image_encoder.forward = lambda x: seen.append(tuple(x.shape)) or embedding
    from sgdfuse_ros.prior.sam import SamSegmenter
    thermal, visible, _ = warm_scene((96, 128))
    prior = SamSegmenter(model, max_points=2)(thermal, visible)
    assert seen == [(1, 3, 1024, 1024)]
    assert prior.source == 'sam' and prior.labels.shape == (96, 128)


def test_mobile_sam_checkpoint_given_as_vit_b_is_named(mobile_sam_checkpoint):
    path, _ = mobile_sam_checkpoint
    with pytest.raises(ConfigError) as err:
        load_sam(path, 'vit_b')
    text = str(err.value)
    assert '\n' not in text and str(path) in text and 'expected vit_b' in text
