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
ROS 2 messages without ROS: sensor_msgs images and camera info as ``rosbags`` objects.

``rosbags`` knows the ROS 2 Humble message definitions and serialises them to the exact CDR bytes
that ROS 2 sends on the wire and stores in bags. The node's DDS transport, the bag replay and
``make-bag`` all build and read messages here, so every front end publishes the same thing.

Stamps are kept as the message's own ``builtin_interfaces/Time`` (sec, nanosec) so that outputs
carry their source pair's stamp exactly; ``stamp_seconds`` gives a float for synchronisation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from ..errors import InputError
from ..pipeline.encodings import array_from_buffer

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
DIAGNOSTIC_ARRAY = 'diagnostic_msgs/msg/DiagnosticArray'


@lru_cache(maxsize=1)
def typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


def msg_type(name: str):
    return typestore().types[name]


def serialize(msg: Any, typename: Optional[str] = None) -> bytes:
    return bytes(typestore().serialize_cdr(msg, typename or msg.__msgtype__))


def deserialize(data: bytes, typename: str) -> Any:
    return typestore().deserialize_cdr(data, typename)


# --- stamps and headers --------------------------------------------------------------------------

def make_time(seconds: float = 0.0, nanoseconds: Optional[int] = None):
    Time = msg_type('builtin_interfaces/msg/Time')
    total = int(round(seconds * 1e9)) if nanoseconds is None else int(nanoseconds)
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


def make_header(stamp, frame_id: str = ''):
    """``stamp``: a Time message, float seconds, or int nanoseconds."""
    Header = msg_type('std_msgs/msg/Header')
    if isinstance(stamp, float):
        stamp = make_time(stamp)
    elif isinstance(stamp, (int, np.integer)):
        stamp = make_time(nanoseconds=int(stamp))
    return Header(stamp=stamp, frame_id=frame_id)


def stamp_nanoseconds(msg_or_header) -> int:
    header = getattr(msg_or_header, 'header', msg_or_header)
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def stamp_seconds(msg_or_header) -> float:
    return stamp_nanoseconds(msg_or_header) * 1e-9


# --- images --------------------------------------------------------------------------------------

_ENCODING_OF_ARRAY = {(np.dtype(np.uint8), 1): 'mono8', (np.dtype(np.uint16), 1): 'mono16',
                      (np.dtype(np.float32), 1): '32FC1', (np.dtype(np.uint8), 3): 'bgr8',
                      (np.dtype(np.uint8), 4): 'bgra8'}


def image_msg(array: np.ndarray, header, encoding: Optional[str] = None):
    """Convert a numpy array to sensor_msgs/Image (little-endian, tightly packed)."""
    array = np.ascontiguousarray(array)
    channels = 1 if array.ndim == 2 else array.shape[2]
    encoding = encoding or _ENCODING_OF_ARRAY.get((array.dtype, channels))
    if encoding is None:
        raise InputError(f'no image encoding for dtype {array.dtype} with {channels} channels')
    if array.dtype.byteorder == '>':
        array = array.astype(array.dtype.newbyteorder('<'))
    height, width = array.shape[:2]
    return msg_type(IMAGE)(header=header, height=height, width=width, encoding=encoding,
                           is_bigendian=0, step=width * channels * array.itemsize,
                           data=array.reshape(-1).view(np.uint8))


def compressed_msg(array: np.ndarray, header, fmt: str = 'jpeg', quality: int = 90):
    """Convert a numpy array to sensor_msgs/CompressedImage (jpeg 8-bit, png 16-bit)."""
    if fmt == 'jpeg':
        ok, buffer = cv2.imencode('.jpg', array, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == 'png':
        ok, buffer = cv2.imencode('.png', array)
    else:
        raise InputError(f"unsupported compressed format '{fmt}' (jpeg or png)")
    if not ok:
        raise InputError(f'could not encode the image as {fmt}')
    encoding = _ENCODING_OF_ARRAY.get((array.dtype, 1 if array.ndim == 2 else array.shape[2]),
                                      'bgr8')
    # image_transport's convention: "<encoding>; <fmt> compressed <encoding>"
    label = f'{encoding}; {fmt} compressed {encoding}'
    return msg_type(COMPRESSED)(header=header, format=label,
                                data=np.frombuffer(buffer.tobytes(), np.uint8))


def image_from_msg(msg) -> Tuple[np.ndarray, str]:
    """sensor_msgs/Image or CompressedImage -> (array, encoding). InputError if unusable."""
    if getattr(msg, '__msgtype__', '') == COMPRESSED or hasattr(msg, 'format'):
        data = np.asarray(msg.data, dtype=np.uint8)
        if data.size == 0:
            raise InputError('compressed image has no data')
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"compressed image ({msg.format or 'unknown format'}) "
                             f'does not decode')
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        encoding = _ENCODING_OF_ARRAY.get((image.dtype, 1 if image.ndim == 2 else image.shape[2]))
        if encoding is None:
            raise InputError(f'compressed image decodes to unsupported dtype {image.dtype}')
        return image, encoding
    image = array_from_buffer(msg.data, int(msg.height), int(msg.width), str(msg.encoding),
                              int(msg.step), bool(msg.is_bigendian))
    return image, str(msg.encoding)


# --- camera info ---------------------------------------------------------------------------------

def camera_info_msg(width: int, height: int, header, k: Optional[np.ndarray] = None,
                    distortion_model: str = 'plumb_bob', d=None):
    """
    Build a CameraInfo message.

    With no intrinsics, a pinhole guess (focal = width, centred) is NOT made: K and P stay zero,
    which ROS reads as 'uncalibrated'.
    """
    K = np.zeros(9) if k is None else np.asarray(k, np.float64).reshape(9)
    P = np.zeros(12)
    if k is not None:
        P[[0, 1, 2, 4, 5, 6, 10]] = [K[0], K[1], K[2], K[3], K[4], K[5], 1.0]
    Roi = msg_type('sensor_msgs/msg/RegionOfInterest')
    return msg_type(CAMERA_INFO)(
        header=header, height=int(height), width=int(width), distortion_model=distortion_model,
        d=np.asarray(d if d is not None else [0.0] * 5, np.float64),
        k=K.astype(np.float64), r=np.eye(3).reshape(9), p=P.astype(np.float64), binning_x=0,
        binning_y=0, roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def scale_camera_info(info, width: int, height: int, header=None):
    """
    Return the visible camera's info for an image resized to width x height.

    Published as fused/camera_info.
    """
    sx, sy = width / max(int(info.width), 1), height / max(int(info.height), 1)
    K = np.asarray(info.k, np.float64).copy()
    P = np.asarray(info.p, np.float64).copy()
    K[[0, 1, 2]] *= sx
    K[[3, 4, 5]] *= sy
    P[[0, 1, 2, 3]] *= sx
    P[[4, 5, 6, 7]] *= sy
    return msg_type(CAMERA_INFO)(
        header=header if header is not None else info.header, height=int(height),
        width=int(width), distortion_model=info.distortion_model, d=np.asarray(info.d),
        k=K, r=np.asarray(info.r, np.float64), p=P, binning_x=info.binning_x,
        binning_y=info.binning_y, roi=info.roi)


# --- the node's topics (relative to its namespace) and outputs -----------------------------------

INPUT_TOPICS = {'thermal': 'thermal/image_raw', 'visible': 'rgb/image_raw'}
CAMERA_INFO_TOPIC = 'rgb/camera_info'
COMPRESSED_SUFFIX = '/compressed'  # image_transport's compressed topic: base topic + suffix
DIAGNOSTICS_TOPIC = '/diagnostics'
OVERLAY_TOPIC = 'semantic/overlay'
# every topic the node (and the bag replay) publishes for a fused pair, relative to the
# node's namespace, with its message type; the overlay only when asked for
OUTPUT_TYPES = {
    'fused/image': IMAGE,
    'fused/camera_info': CAMERA_INFO,
    'semantic/labels': IMAGE,
    'semantic/targets': IMAGE,
    OVERLAY_TOPIC: IMAGE,
}
OUTPUT_TOPICS = tuple(topic for topic in OUTPUT_TYPES if topic != OVERLAY_TOPIC)  # always sent


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
        'fused/image': image_msg(fused, header, encoding),
        'fused/camera_info': info,
        'semantic/labels': image_msg(result.prior.labels, header, 'mono16'),
        'semantic/targets': image_msg(result.prior.targets_u8(), header, 'mono8'),
    }
    if overlay:
        from ..prior.format import overlay as draw_overlay
        out[OVERLAY_TOPIC] = image_msg(draw_overlay(result.fused_bgr, result.prior), header,
                                       'bgr8')
    return out
