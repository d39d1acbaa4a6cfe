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
Training frames from a user's own ROS 2 bag (``sgdfuse adapt``), decoded as the node decodes them.

Nothing here is new reading code: the bag is opened and its two camera topics are found by
:mod:`sgdfuse_ros.bag.reader` (as ``sgdfuse replay`` finds them; ``--thermal-topic`` /
``--rgb-topic`` settle ambiguous bags), every message passes the node's own checks
(:func:`sgdfuse_ros.intake.frame_from_bytes`: mono8/mono16/16UC1/32FC1 thermal,
bgr8/rgb8/mono8/... visible, ``CompressedImage`` too), pairs are made by the node's synchroniser
(:func:`sgdfuse_ros.intake.pair_frame`, ``sync.slop`` / ``sync.queue_size`` from the
config, reset when stamps jump back as the node does), and each kept pair goes through
:class:`FusionPipeline` with the config's AGC, registration (homography, output size), and
semantic prior -- with the classical first stage and no refiner, so that only the inputs of the
learned stages are computed. The result is what the learned stages see on the robot: registered
thermal in [0, 1], the visible luminance, the prior's ``targets`` and ``boundaries``.

At most ``frames`` pairs are kept, spread evenly over the bag (from the topics' message counts);
every few of them are held out for validation (model selection), the rest are training frames
(float16 planes, to keep a few hundred full-size frames in memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .data import Sample
from ..bag.reader import BagReadError
from ..errors import InputError
from ..intake import all_rejected, ApproximateSync, frame_from_bytes, pair_frame, Rejected
from ..pipeline.fusion_pipeline import Failed, fuse_pair, FusionPipeline
from ..pipeline.images import split_luma


@dataclass
class BagFrames:
    """Frames read from a bag for adaptation."""

    train: List[Sample]
    val: List[Sample]
    size: tuple                     # (height, width) of the registered frames (the first kept)
    pairs_matched: int              # pairs the synchroniser made while reading
    messages: Dict[str, int]        # messages read per role
    rejected: Dict[str, int]        # messages the node's checks rejected, per role
    failed: int = 0                 # kept pairs the pipeline could not prepare (InputError)
    notes: List[str] = field(default_factory=list)

    def describe(self) -> str:
        h, w = self.size
        rejected = sum(self.rejected.values())
        text = (f"{self.messages['thermal']} thermal + {self.messages['visible']} RGB messages, "
                f'{self.pairs_matched} pairs; kept {len(self.train)} for training and '
                f'{len(self.val)} for validation ({w}x{h})')
        if rejected:
            text += f'; {rejected} messages rejected as the node would'
        if self.failed:
            text += f'; {self.failed} kept pairs could not be prepared'
        return text


def selected_indices(expected: int, frames: int) -> Optional[set]:
    """Pair indices to keep: ``frames`` spread evenly over ``expected`` (None: keep the first)."""
    if expected <= 0:
        return None
    n = min(frames, expected)
    return set(np.round(np.linspace(0, expected - 1, n)).astype(int).tolist())


def validation_positions(kept: int, val_frames: int) -> set:
    """Positions (among the kept pairs) held out for validation, spread evenly, never all."""
    n = min(val_frames, kept - 1)
    if n <= 0:
        return set()
    step = kept / n
    return {int(step * (i + 0.5)) for i in range(n)}


def preparation_config(config: dict) -> dict:
    """Config of the pipeline that prepares frames: the user's, without the learned stages."""
    return dict(config, **{'first_stage.type': 'laplacian', 'refiner.steps': 0,
                           'backend': 'torch'})


def _sample(name: str, result, keep_colour: bool) -> Sample:
    thermal = result.thermal
    visible_y, chroma = split_luma(result.visible)
    targets, boundaries = result.prior.targets, result.prior.boundaries
    if keep_colour:  # validation frame: full precision and what the metrics need
        thermal_u8 = np.clip(np.rint(thermal * 255.0), 0, 255).astype(np.uint8)
        return Sample(name, thermal.astype(np.float32), visible_y, targets.astype(np.float32),
                      boundaries.astype(np.float32), chroma, thermal_u8, result.visible)
    half = np.float16
    return Sample(name, thermal.astype(half), visible_y.astype(half), targets.astype(half),
                  boundaries.astype(half), None, None, None)


def read_bag_frames(bag, topics, config: dict, frames: int, val_frames: int,
                    progress=None) -> BagFrames:
    """
    Read ``bag`` (an open ``BagInput``) and keep up to ``frames`` of its pairs.

    ``topics`` comes from :func:`~sgdfuse_ros.bag.reader.choose_topics`. ``progress`` (a
    :class:`~sgdfuse_ros.progress.Progress`) is advanced once per pair made. Raises
    :class:`InputError` when the bag yields no usable pair.
    """
    if frames < 1:
        raise InputError(f'--frames must be >= 1, got {frames}')
    expected = min(topics.thermal.count, topics.visible.count)
    keep = selected_indices(expected, frames)
    kept_total = len(keep) if keep is not None else frames
    val_at = validation_positions(kept_total, val_frames)
    roles = {topics.thermal.name: 'thermal', topics.visible.name: 'visible'}
    max_pixels = config['limits.max_input_pixels']
    slop, queue = config['sync.slop'], config['sync.queue_size']
    sync = ApproximateSync(slop=slop, queue_size=queue)
    messages = {'thermal': 0, 'visible': 0}
    rejected = {'thermal': 0, 'visible': 0}
    reasons = {'thermal': {}, 'visible': {}}  # why, per role: {reason: count}
    first_reason = {}
    out = BagFrames([], [], (0, 0), 0, messages, rejected)
    pipeline = FusionPipeline(preparation_config(config))
    position = 0  # kept pairs so far (train + val + failed)

    def prepare(pair) -> None:
        nonlocal position
        index = out.pairs_matched
        out.pairs_matched += 1
        if progress is not None:
            progress.update()
        if keep is not None and index not in keep:
            return
        if keep is None and position >= frames:
            return
        is_val = position in val_at
        position += 1
        result = fuse_pair(pipeline, pair)
        if isinstance(result, Failed):
            if result.reason == 'pipeline_bug':  # adapt stops on a bug, as it always did
                raise result.error
            out.failed += 1
            first_reason.setdefault('pipeline', result.text)
            return
        if not out.size[0]:
            out.size = result.thermal.shape[:2]
        name = f'pair{index:06d}@{pair.thermal.stamp_ns}'
        (out.val if is_val else out.train).append(_sample(name, result, is_val))

    stream = bag.messages(list(roles))
    try:
        for topic, msgtype, _, raw in stream:
            role = roles[topic]
            messages[role] += 1
            try:
                frame = frame_from_bytes(role, raw, msgtype, max_pixels)
            except Rejected as err:  # by the node's checks, or not deserialisable
                rejected[role] += 1
                reasons[role][err.reason] = reasons[role].get(err.reason, 0) + 1
                first_reason.setdefault(role, str(err))
                continue
            for pair in pair_frame(sync, frame)[1]:  # a stamp jumping back restarts pairing
                prepare(pair)
            if keep is None and position >= frames:
                break
    except BagReadError as err:
        out.notes.append(f'{err}; using the pairs read before it')
    finally:
        stream.close()
        pipeline.close()
    sync.flush()
    if not out.train and not out.pairs_matched:
        cause = '; '.join(line for line in (
            all_rejected(label, messages[role], reasons[role], first_reason.get(role))
            for role, label in (('thermal', 'thermal'), ('visible', 'RGB'))) if line)
        if cause:  # not a pairing problem: name the frames' own reason
            raise InputError(f'bag {bag.path}: {cause}; nothing to adapt on')
    if not out.train:
        first = f" (first: {first_reason['pipeline']})" if 'pipeline' in first_reason else ''
        what = (f'{out.pairs_matched} pairs, none usable{first}' if out.pairs_matched
                else f'no thermal/RGB pairs within sync.slop={slop} s')
        raise InputError(f"bag {bag.path}: {what} ({messages['thermal']} thermal, "
                         f"{messages['visible']} RGB messages read, {sum(rejected.values())} "
                         'rejected); nothing to adapt on')
    return out
