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
The fuse step: a checked pair of frames to the fused result (or why not), and its messages.

The node (:mod:`sgdfuse_ros.node.core`), the bag replay (:mod:`sgdfuse_ros.bag.replay`) and
``sgdfuse adapt`` (:mod:`sgdfuse_ros.training.bag_data`) fuse a pair through :func:`fuse_pair`,
which returns the result or a :class:`Failed` with one of :data:`FAILURES`; the node and the
replay publish through :func:`fusion_outputs`, so a replayed bag holds what the node would have
sent.

``semantic/targets`` and ``semantic/detections`` carry the frame's scored warm targets
(:mod:`sgdfuse_ros.prior.targets`), not the fusion prior's every warm region; the detections'
ids come from a :class:`SemanticOutputs` the caller keeps for the run (its tracker,
:mod:`sgdfuse_ros.prior.tracking`), so a target keeps its id while it is tracked.
``semantic/labels`` stays the prior's region map, renumbered every frame (targets first, by
area): its ids are not the detections' ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from .errors import error_line, ResourceError, SgdfuseError
from .messages import (camera_info_msg, COMPRESSED_FORMATS, compressed_msg, COMPRESSED_SUFFIX,
                       detection_array_msg, DETECTIONS_TOPIC, FUSED_INFO_TOPIC, FUSED_TOPIC,
                       image_msg, LABELS_TOPIC, make_header, OVERLAY_TOPIC, scale_camera_info,
                       TARGETS_TOPIC)
from .prior.format import overlay as draw_overlay
from .prior.targets import TargetSelector, WarmTargets
from .prior.tracking import TargetTracker

#: Detection2D hypothesis class of a warm target (the selection does not tell people from cars)
TARGET_CLASS = 'warm_target'


class SemanticOutputs:
    """
    The state the semantic outputs keep across frames: the target selection and the tracker.

    ``outputs(result)`` -> (:class:`~sgdfuse_ros.prior.targets.WarmTargets`, [id per box]).
    With ``prior.source: none`` (no prior) nothing is a target.
    """

    def __init__(self, selector: Optional[TargetSelector] = None,
                 tracker: Optional[TargetTracker] = None):
        self.selector = selector if selector is not None else TargetSelector()
        self.tracker = tracker if tracker is not None else TargetTracker()
        self.last: Tuple[Optional[WarmTargets], List[int]] = (None, [])  # the latest frame's

    def reset(self) -> None:
        self.tracker.reset()

    def __call__(self, result) -> Tuple[WarmTargets, List[int]]:
        if result.prior.source == 'none':
            found = WarmTargets(np.zeros(result.fused_y.shape, np.float32), [])
        else:
            found = self.selector(result.thermal)
        self.last = (found, self.tracker.update([t.box for t in found.boxes]))
        return self.last


def detections(found: WarmTargets, ids: List[int]) -> list:
    """``(box, score, id, class)`` per target, as :func:`detection_array_msg` reads them."""
    return [(t.box, t.score, str(i), TARGET_CLASS) for t, i in zip(found.boxes, ids)]


def fusion_outputs(result, stamp, frame_id: str, encoding: str = 'bgr8',
                   camera_info=None, overlay: bool = False,
                   undistorted: bool = False,
                   semantic: Optional[SemanticOutputs] = None, compressed: Iterable[str] = (),
                   jpeg_quality: int = 95) -> Dict[str, Any]:
    """
    Return the messages published for one fused pair, keyed by relative topic name.

    Every message carries ``stamp`` (the source pair's stamp, a Time message) and ``frame_id``
    (the frame the fused image lives in: the visible camera's). ``semantic``: the run's
    :class:`SemanticOutputs` (stable detection ids); None numbers this frame's targets 1..N.
    ``compressed`` names the image topics (of :data:`~sgdfuse_ros.messages.COMPRESSED_FORMATS`)
    whose image_transport compressed twin (``<topic>/compressed``) is also wanted: the same
    image, encoded.
    """
    header = make_header(stamp, frame_id)
    found, ids = (semantic if semantic is not None else SemanticOutputs())(result)
    fused = result.fused_bgr if encoding == 'bgr8' else result.fused_y
    height, width = result.fused_y.shape
    info = (scale_camera_info(camera_info, width, height, header, undistorted)
            if camera_info is not None
            else camera_info_msg(width, height, header))
    out = {
        FUSED_TOPIC: image_msg(fused, header, encoding),
        FUSED_INFO_TOPIC: info,
        LABELS_TOPIC: image_msg(result.prior.labels, header, 'mono16'),
        TARGETS_TOPIC: image_msg(found.targets_u8(), header, 'mono8'),
        DETECTIONS_TOPIC: detection_array_msg(header, detections(found, ids)),
    }
    overlay_bgr = draw_overlay(result.fused_bgr, result.prior) if overlay else None
    if overlay:
        out[OVERLAY_TOPIC] = image_msg(overlay_bgr, header, 'bgr8')
    arrays = {FUSED_TOPIC: (fused, encoding), LABELS_TOPIC: (result.prior.labels, 'mono16'),
              TARGETS_TOPIC: (found.targets_u8(), 'mono8'), OVERLAY_TOPIC: (overlay_bgr, 'bgr8')}
    for topic in compressed:
        array, raw_encoding = arrays[topic]
        if array is not None:
            out[topic + COMPRESSED_SUFFIX] = compressed_msg(
                array, header, COMPRESSED_FORMATS[topic], jpeg_quality, raw_encoding)
    return out


FAILURES = ('out_of_memory', 'pipeline', 'pipeline_bug')  # why a pair was not fused


@dataclass
class Failed:
    """A pair the pipeline could not fuse: the reason (one of :data:`FAILURES`) and one line."""

    reason: str
    text: str
    error: Exception


def fuse_pair(pipeline, pair) -> Union['FusionResult', Failed]:  # noqa: F821
    """
    Fuse ``pair`` (:class:`sgdfuse_ros.intake.Pair`): the pipeline's result, or why not.

    ``out_of_memory``: memory ran out even after the pipeline's retry; ``pipeline``: the
    pipeline refused the pair (a one-line :class:`SgdfuseError`); ``pipeline_bug``: anything else
    it raised (the caller survives it as it survives a bad frame).
    """
    thermal, visible = pair.thermal, pair.visible
    try:
        return pipeline.process(thermal.image, visible.image, thermal.encoding, visible.encoding)
    except ResourceError as err:
        return Failed('out_of_memory', str(err), err)
    except SgdfuseError as err:
        return Failed('pipeline', str(err), err)
    except Exception as err:  # a bug, or a library failing on odd data: costs only this pair
        return Failed('pipeline_bug', error_line(err, 200), err)
