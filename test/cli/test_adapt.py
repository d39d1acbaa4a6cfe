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

"""``sgdfuse adapt``: frames from a tiny bag, weights the pipeline loads, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sgdfuse_ros import messages as m
from sgdfuse_ros.bag.reader import choose_topics, open_bag
from sgdfuse_ros.bag.writer import BagWriter
from sgdfuse_ros.cli import main as cli
from sgdfuse_ros.config import load_config, models_dir
from sgdfuse_ros.eval.synthetic_pairs import make_pair
from sgdfuse_ros.fusion.network import load_first_stage
from sgdfuse_ros.fusion.refiner import load_refiner
from sgdfuse_ros.pipeline.fusion_pipeline import FusionPipeline
from sgdfuse_ros.training.bag_data import read_bag_frames
import torch

SIZE = (64, 48)  # w, h
FAST = ['--batch', '2', '--crop', '32', '--threads', '1', '--quiet']


def write_bag(path: Path, n: int = 6, thermal: str = 'mono16', visible: str = 'bgr8',
              thermal_offset_s: float = 0.002, topics=('/thermal/image_raw', '/rgb/image_raw'),
              size=SIZE) -> Path:
    """Write a two-camera bag of ``n`` synthetic registered pairs in the given encodings."""
    thermal_topic, visible_topic = topics
    with BagWriter(path) as bag:
        for i in range(n):
            ir, vis, _ = make_pair(i, size)
            t_visible = 100.0 + 0.1 * i
            t_th = t_visible + thermal_offset_s
            if visible == 'jpeg':
                visible_msg = m.compressed_msg(vis, m.make_header(t_visible, 'rgb'), 'jpeg', 90)
            elif visible == 'rgb8':
                visible_msg = m.image_msg(vis[..., ::-1], m.make_header(t_visible, 'rgb'), 'rgb8')
            else:
                visible_msg = m.image_msg(vis, m.make_header(t_visible, 'rgb'), visible)
            if thermal == 'mono16':
                raw = (7000 + 30 * ir.astype(np.uint16)).astype(np.uint16)
            elif thermal == '32FC1':
                raw = (280.0 + ir.astype(np.float32) / 8.0).astype(np.float32)
            else:
                raw = ir
            th_msg = m.image_msg(raw, m.make_header(t_th, 'thermal'), thermal)
            if visible_topic:
                bag.write(visible_topic, int(t_visible * 1e9) + 4_000_000, visible_msg)
            if thermal_topic:
                bag.write(thermal_topic, int(t_th * 1e9) + 9_000_000, th_msg)
    return path


@pytest.fixture
def bag(tmp_path):
    return write_bag(tmp_path / 'bag')


def first_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('sgdfuse adapt: error:'), lines[0]
    return lines[0]


def params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize('thermal,visible', [('mono16', 'bgr8'), ('32FC1', 'jpeg'),
                                             ('mono8', 'rgb8')])
def test_frames_are_read_as_the_node_reads_them(tmp_path, thermal, visible):
    path = write_bag(tmp_path / 'bag', n=5, thermal=thermal, visible=visible,
                     topics=('/flir/thermal/image_raw', '/camera/color/image_raw'
                             + ('/compressed' if visible == 'jpeg' else '')))
    config = load_config(None, {'output.width': 40, 'output.height': 32})
    with open_bag(path) as bag:
        frames = read_bag_frames(bag, choose_topics(bag), config, frames=4, val_frames=1)
    assert frames.pairs_matched == 5 and len(frames.train) == 3 and len(frames.val) == 1
    assert frames.size == (32, 40)  # registration (output size) from the config
    s, v = frames.train[0], frames.val[0]
    assert s.thermal.shape == s.visible_y.shape == s.targets.shape == (32, 40)
    assert 0.0 <= float(s.thermal.min()) and float(s.thermal.max()) <= 1.0
    assert float(s.thermal.max()) - float(s.thermal.min()) > 0.3  # the AGC spread the scene
    assert v.visible_bgr.shape == (32, 40, 3) and v.thermal_u8.dtype == np.uint8


def test_adapt_writes_weights_the_pipeline_loads(bag, tmp_path, capsys):
    out = tmp_path / 'adapted'
    code = cli(['adapt', str(bag), '--out', str(out), '--steps', '3', '--refiner-steps', '2',
                '--val-frames', '0', '--loss-weights', '{"visible_lead": 0.5}', *FAST])
    assert code == 0, capsys.readouterr().err
    first, refiner = out / 'first_stage.pt', out / 'refiner.pt'
    start_first = load_first_stage(models_dir() / 'first_stage.pt')
    start_refiner = load_refiner(models_dir() / 'refiner.pt', steps=2)
    adapted_first, adapted_refiner = load_first_stage(first), load_refiner(refiner, steps=2)
    assert not torch.equal(params(adapted_first.model), params(start_first.model))
    assert not torch.equal(params(adapted_refiner.model), params(start_refiner.model))
    assert adapted_first.info['train_pairs'] == 6 and adapted_first.info['steps'] == 3
    assert adapted_first.info['adapted_from'].endswith('first_stage.pt')
    # the stored loss weights of each stage, with --loss-weights on top
    for start, adapted in ((start_first, adapted_first), (start_refiner, adapted_refiner)):
        stored = start.info.get('loss_weights')
        if stored:
            assert adapted.info['loss_weights'] == dict(stored, visible_lead=0.5)
        assert adapted.info['loss_weights']['visible_lead'] == 0.5
    config = load_config(None, {'first_stage.weights': str(first),
                                'refiner.weights': str(refiner)})
    ir, vis, _ = make_pair(0, SIZE)
    with FusionPipeline(config) as pipeline:
        result = pipeline.process(ir, vis)
    assert result.fused_bgr.shape == (SIZE[1], SIZE[0], 3) and result.refined


def test_adapt_resumes_from_its_checkpoint(bag, tmp_path, capsys):
    def adapt(out, *extra):
        return cli(['adapt', str(bag), '--out', str(out), '--stage', 'first-stage', '--steps',
                    '6', '--val-frames', '0', *FAST, *extra])

    assert adapt(tmp_path / 'straight') == 0
    assert adapt(tmp_path / 'split', '--stop-after', '3') == 0
    work = tmp_path / 'split' / 'adapt_work' / 'first-stage'
    assert torch.load(work / 'checkpoint.pt', weights_only=True)['step'] == 3
    capsys.readouterr()
    assert cli(['adapt', str(bag), '--out', str(tmp_path / 'split'), '--stage', 'first-stage',
                '--steps', '6', '--val-frames', '0', '--batch', '2', '--crop', '32']) == 0
    assert 'resuming from' in capsys.readouterr().err
    log = [json.loads(line) for line in (work / 'log.jsonl').read_text().splitlines()]
    assert max(r['step'] for r in log) == 6
    straight = load_first_stage(tmp_path / 'straight' / 'first_stage.pt')
    resumed = load_first_stage(tmp_path / 'split' / 'first_stage.pt')
    assert resumed.info['steps'] == 6
    torch.testing.assert_close(params(resumed.model), params(straight.model), rtol=0, atol=1e-6)
    # other settings on the same --work: one line, unless --fresh
    assert adapt(tmp_path / 'split', '--lr', '1e-4') == 2
    assert 'another adaptation' in first_line_error(capsys)
    assert adapt(tmp_path / 'split', '--lr', '1e-4', '--fresh', '--stop-after', '1') == 0
    assert torch.load(work / 'checkpoint.pt', weights_only=True)['step'] == 1


def _not_a_bag(tmp_path):
    path = tmp_path / 'notes.db3'
    path.write_bytes(b'not sqlite')
    return path


@pytest.mark.parametrize('case,needle', [
    ('missing', 'bag not found'),
    ('not_a_bag', 'not an sqlite3 database'),
    ('no_thermal', 'no thermal image topic'),
    ('no_pairs', 'no thermal/RGB pairs'),
    ('unwritable_out', 'is not writable'),
    ('bad_weights', 'first_stage weights'),
    ('bad_loss_weights', '--loss-weights'),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, case, needle):
    bag = tmp_path / 'bag'
    out = tmp_path / 'out'
    extra = []
    if case == 'missing':
        bag = tmp_path / 'nope'
    elif case == 'not_a_bag':
        bag = _not_a_bag(tmp_path)
    elif case == 'no_thermal':
        write_bag(bag, n=3, topics=(None, '/rgb/image_raw'))
    elif case == 'no_pairs':
        write_bag(bag, n=3, thermal_offset_s=0.5)  # always more than sync.slop apart
    elif case == 'unwritable_out':
        write_bag(bag, n=3)
        (tmp_path / 'file').write_text('a file, not a folder')
        out = tmp_path / 'file' / 'out'
    elif case == 'bad_weights':
        write_bag(bag, n=3)
        (tmp_path / 'w.pt').write_bytes(b'not torch')
        extra = ['--first-stage', str(tmp_path / 'w.pt')]
    elif case == 'bad_loss_weights':
        write_bag(bag, n=3)
        extra = ['--loss-weights', '{"visible_lead": "none"}']
    code = cli(['adapt', str(bag), '--out', str(out), *extra, *FAST])
    assert code == 2
    line = first_line_error(capsys)
    assert needle in line, line
    for name in ('first_stage.pt', 'refiner.pt', 'adapt_work/first-stage'):
        assert not (out / name).exists()
