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

"""Helpers for the bag tests (no tests here): tiny image pairs, bags, and reading bags back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sgdfuse_ros import messages as m
from sgdfuse_ros.bag.writer import BagWriter
from sgdfuse_ros.cli import main as cli

SIZE = (64, 48)  # w, h: small enough for fast tests, big enough for every metric


def tiny_pairs(tmp_path: Path, n: int = 4, size=SIZE):
    """``n`` registered synthetic pairs (the lead's sample generator) -> (ir_dir, vis_dir)."""
    from sgdfuse_ros.eval.synthetic_pairs import write_sample
    return write_sample(tmp_path / 'pairs', n=n, size=size)


def make_bag(tmp_path: Path, name: str = 'in_bag', *extra, n: int = 4, capsys=None) -> Path:
    ir, vis = tiny_pairs(tmp_path, n)
    out = tmp_path / name
    code = cli(['make-bag', '--ir', str(ir), '--vis', str(vis), '--out', str(out), '--quiet',
                *extra])
    assert code == 0
    return out


def read_bag(path):
    """{topic: [(log_time_ns, msg), ...]} of a whole (small) bag, plus the topic types."""
    from rosbags.rosbag2 import Reader
    out, types = {}, {}
    with Reader(path) as reader:
        for conn in reader.connections:
            types[conn.topic] = conn.msgtype
            out.setdefault(conn.topic, [])
        for conn, log_time, raw in reader.messages():
            out[conn.topic].append((log_time, m.deserialize(raw, conn.msgtype)))
    return out, types


def raw_messages(path, topic):
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, bytes(raw)) for _, t, raw in reader.messages(connections=conns)]


def stamp_of(msg):
    return (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))


def write_custom_bag(path, frames, storage='sqlite3'):
    """frames: iterable of (topic, log_ns, msg or (raw bytes, msgtype))."""
    with BagWriter(path, storage=storage) as bag:
        for topic, log_ns, msg in frames:
            if isinstance(msg, tuple):
                bag.write(topic, log_ns, msg[0], msg[1])
            else:
                bag.write(topic, log_ns, msg)
    return Path(path)


def camera_frames(n, thermal_offset_s=0.0, period_s=0.1, size=SIZE, thermal='/thermal/image_raw',
                  visible='/rgb/image_raw', start_s=100.0, seed=0, thermal_dtype=np.uint16):
    """Messages of a small two-camera recording (thermal mono16/mono8, RGB bgr8)."""
    rng = np.random.default_rng(seed)
    w, h = size
    frames = []
    for i in range(n):
        t_visible = start_s + i * period_s
        t_th = t_visible + thermal_offset_s
        vis = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        if thermal_dtype == np.uint16:
            ir = rng.integers(7000, 9000, (h, w)).astype(np.uint16)
        else:
            ir = rng.integers(0, 255, (h, w), dtype=np.uint8)
        frames.append((visible, int(t_visible * 1e9) + 3_000_000,
                       m.image_msg(vis, m.make_header(t_visible, 'rgb'), 'bgr8')))
        frames.append((thermal, int(t_th * 1e9) + 9_000_000,
                       m.image_msg(ir, m.make_header(t_th, 'thermal'))))
    frames.sort(key=lambda f: f[1])
    return frames


def load_report(folder):
    return json.loads((Path(folder) / 'report.json').read_text())
