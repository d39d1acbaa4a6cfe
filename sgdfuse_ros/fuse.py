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
The fuse step: a checked pair of frames to the fused result, and the messages published for it.

The node (:mod:`sgdfuse_ros.node.core`) and the bag replay (:mod:`sgdfuse_ros.bag.replay`) both
publish through :func:`fusion_outputs`, so a replayed bag holds what the node would have sent.
"""

from __future__ import annotations

from typing import Any, Dict

from .messages import (camera_info_msg, FUSED_INFO_TOPIC, FUSED_TOPIC, image_msg, LABELS_TOPIC,
                       make_header, OVERLAY_TOPIC, scale_camera_info, TARGETS_TOPIC)
from .prior.format import overlay as draw_overlay


def fusion_outputs(result, stamp, frame_id: str, encoding: str = 'bgr8',
                   camera_info=None, overlay: bool = False) -> Dict[str, Any]:
    """
    Return the messages published for one fused pair, keyed by relative topic name.

    Every message carries ``stamp`` (the source pair's stamp, a Time message) and ``frame_id``
    (the frame the fused image lives in: the visible camera's).
    """
    header = make_header(stamp, frame_id)
    fused = result.fused_bgr if encoding == 'bgr8' else result.fused_y
    height, width = result.fused_y.shape
    info = (scale_camera_info(camera_info, width, height, header) if camera_info is not None
            else camera_info_msg(width, height, header))
    out = {
        FUSED_TOPIC: image_msg(fused, header, encoding),
        FUSED_INFO_TOPIC: info,
        LABELS_TOPIC: image_msg(result.prior.labels, header, 'mono16'),
        TARGETS_TOPIC: image_msg(result.prior.targets_u8(), header, 'mono8'),
    }
    if overlay:
        out[OVERLAY_TOPIC] = image_msg(draw_overlay(result.fused_bgr, result.prior), header,
                                       'bgr8')
    return out
