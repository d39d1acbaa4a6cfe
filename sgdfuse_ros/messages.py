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
ROS 2 messages without ROS: the codec, images and camera info, and the one table of topics.

``rosbags`` knows the ROS 2 Humble message definitions and serialises them to the exact CDR bytes
that ROS 2 sends on the wire and stores in bags; the ``vision_msgs`` 4.x definitions (Humble,
Jazzy: ``Detection2DArray`` and what it holds, :data:`VISION_MSGS`), which ``rosbags`` does not
ship, are registered with it here. The node, its transports, the bag replay,
``make-bag`` and ``adapt`` all build and read messages here, so every front end publishes the
same thing; the topic names the node, ``sgdfuse live``, ``make-bag`` and the synthetic camera use
are spelled once, at the end of this file. This module is on the ground floor: it imports
nothing of the package but its errors.

Stamps are kept as the message's own ``builtin_interfaces/Time`` (sec, nanosec) so that outputs
carry their source pair's stamp exactly; ``stamp_seconds`` gives a float for synchronisation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional, Tuple

import cv2
import numpy as np
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

from .errors import InputError
from .image_decode import decode_image

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
DIAGNOSTIC_ARRAY = 'diagnostic_msgs/msg/DiagnosticArray'
DETECTION_ARRAY = 'vision_msgs/msg/Detection2DArray'

# vision_msgs 4.x (ROS 2 Humble and later; the same in Jazzy), the messages Detection2DArray uses
VISION_MSGS = {
    'vision_msgs/msg/Point2D': 'float64 x\nfloat64 y\n',
    'vision_msgs/msg/Pose2D': 'vision_msgs/Point2D position\nfloat64 theta\n',
    'vision_msgs/msg/BoundingBox2D': 'vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n',
    'vision_msgs/msg/ObjectHypothesis': 'string class_id\nfloat64 score\n',
    'vision_msgs/msg/ObjectHypothesisWithPose':
        'vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n',
    'vision_msgs/msg/Detection2D':
        'std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n'
        'vision_msgs/BoundingBox2D bbox\nstring id\n',
    'vision_msgs/msg/Detection2DArray':
        'std_msgs/Header header\nvision_msgs/Detection2D[] detections\n',
}


@lru_cache(maxsize=1)
def typestore():
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


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

# encoding -> (numpy dtype, channels): the image encodings this package reads
IMAGE_LAYOUT = {
    'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1),
    'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
    'bgr8': (np.uint8, 3), 'rgb8': (np.uint8, 3),
    'bgra8': (np.uint8, 4), 'rgba8': (np.uint8, 4),
}

_ENCODING_OF_ARRAY = {(np.dtype(np.uint8), 1): 'mono8', (np.dtype(np.uint16), 1): 'mono16',
                      (np.dtype(np.float32), 1): '32FC1', (np.dtype(np.uint8), 3): 'bgr8',
                      (np.dtype(np.uint8), 4): 'bgra8'}


def array_from_buffer(data, height: int, width: int, encoding: str, step: int,
                      is_bigendian: bool = False) -> np.ndarray:
    """
    Return a sensor_msgs/Image payload as a numpy array (copy-free where possible).

    Checks what a driver can get wrong: sizes, step, data length, encoding, byte order.
    """
    if encoding not in IMAGE_LAYOUT:
        raise InputError(f"unsupported image encoding '{encoding}'")
    dtype, channels = IMAGE_LAYOUT[encoding]
    if height <= 0 or width <= 0:
        raise InputError(f'image has zero size ({width}x{height})')
    itemsize = np.dtype(dtype).itemsize
    row = width * channels * itemsize
    if step < row:
        raise InputError(f'image step {step} is smaller than width*channels*bytes = {row}')
    buffer = np.frombuffer(memoryview(data).cast('B') if not isinstance(data, np.ndarray)
                           else data.view(np.uint8).reshape(-1), dtype=np.uint8)
    if buffer.size != step * height:
        raise InputError(f'image data has {buffer.size} bytes, expected height*step = '
                         f'{step * height}')
    rows = buffer.reshape(height, step)[:, :row]
    image = rows.view(np.dtype(dtype).newbyteorder('>' if is_bigendian else '<'))
    image = image.reshape((height, width, channels) if channels > 1 else (height, width))
    if is_bigendian and itemsize > 1:
        image = image.astype(np.dtype(dtype))  # native byte order
    return image


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


def compressed_msg(array: np.ndarray, header, fmt: str = 'jpeg', quality: int = 90,
                   encoding: Optional[str] = None):
    """
    Convert a numpy array to sensor_msgs/CompressedImage as image_transport's plugin does.

    ``jpeg`` for 8-bit images, ``png`` (lossless) for 8- and 16-bit ones. ``format`` is what
    ``compressed_image_transport`` writes: ``"<raw encoding>; <fmt> compressed <target>"``
    where the target is ``bgr8`` (``bgr16``) for colour and empty for mono images
    (``"bgr8; jpeg compressed bgr8"``, ``"mono16; png compressed "``), so image_transport's
    decoder (``republish``, rqt_image_view, Foxglove) reads it back. ``encoding``: the raw
    image's encoding (default: from the array).
    """
    channels = 1 if array.ndim == 2 else array.shape[2]
    if fmt == 'jpeg':
        if array.dtype != np.uint8:
            raise InputError(f'jpeg holds 8-bit images, not {array.dtype} (use png)')
        ok, buffer = cv2.imencode('.jpg', array, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == 'png':
        ok, buffer = cv2.imencode('.png', array)
    else:
        raise InputError(f"unsupported compressed format '{fmt}' (jpeg or png)")
    if not ok:
        raise InputError(f'could not encode the image as {fmt}')
    encoding = encoding or _ENCODING_OF_ARRAY.get((array.dtype, channels), 'bgr8')
    target = ('bgr16' if array.dtype == np.uint16 else 'bgr8') if channels >= 3 else ''
    return msg_type(COMPRESSED)(header=header, format=f'{encoding}; {fmt} compressed {target}',
                                data=np.frombuffer(buffer.tobytes(), np.uint8))


def image_from_msg(msg, max_pixels: Optional[int] = None) -> Tuple[np.ndarray, str]:
    """
    sensor_msgs/Image or CompressedImage -> (array, encoding). InputError if unusable.

    A compressed image is decoded the one way every path decodes an encoded image
    (:func:`~sgdfuse_ros.image_decode.decode_image`): its size is read from the
    format's header and refused beyond ``max_pixels`` (None: the default
    ``limits.max_input_pixels``) before anything is decoded.
    """
    if getattr(msg, '__msgtype__', '') == COMPRESSED or hasattr(msg, 'format'):
        data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
        if data.size == 0:
            raise InputError('compressed image has no data')
        label = short_label(msg.format) or 'unknown format'
        image = decode_image(data, max_pixels, f'compressed image ({label})')
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        encoding = _ENCODING_OF_ARRAY.get((image.dtype, 1 if image.ndim == 2 else image.shape[2]))
        if encoding is None:
            raise InputError(f'compressed image decodes to unsupported dtype {image.dtype} with '
                             f'{image.shape[2]} channels')
        return image, encoding
    image = array_from_buffer(msg.data, int(msg.height), int(msg.width), str(msg.encoding),
                              int(msg.step), bool(msg.is_bigendian))
    return image, str(msg.encoding)


def short_label(text, limit: int = 40) -> str:
    """Return a message's free-text field, bounded and printable, for a log line."""
    text = str(text)
    return ''.join(c if c.isprintable() else '?' for c in text[:limit]) + \
        ('...' if len(text) > limit else '')


# --- detections ----------------------------------------------------------------------------------

def detection_array_msg(header, detections):
    """
    Build a vision_msgs/Detection2DArray: one Detection2D per ``(box, score, id, class_id)``.

    ``box``: (x0, y0, x1, y1) in pixels of the image the header names (end exclusive); the
    Detection2D's bbox is its centre and size, ``id`` the (tracking) id, and its one hypothesis
    holds ``class_id`` and ``score`` (the pose stays zero: a 2D detection).
    """
    types = typestore().types
    Point2D, Pose2D = types['vision_msgs/msg/Point2D'], types['vision_msgs/msg/Pose2D']
    Box = types['vision_msgs/msg/BoundingBox2D']
    Hypothesis = types['vision_msgs/msg/ObjectHypothesis']
    WithPose = types['vision_msgs/msg/ObjectHypothesisWithPose']
    Detection = types['vision_msgs/msg/Detection2D']
    Pose, Point = types['geometry_msgs/msg/Pose'], types['geometry_msgs/msg/Point']
    Quaternion = types['geometry_msgs/msg/Quaternion']
    PoseWithCovariance = types['geometry_msgs/msg/PoseWithCovariance']
    out = []
    for (x0, y0, x1, y1), score, ident, class_id in detections:
        centre = Pose2D(position=Point2D(x=(x0 + x1) / 2.0, y=(y0 + y1) / 2.0), theta=0.0)
        pose = PoseWithCovariance(pose=Pose(position=Point(x=0.0, y=0.0, z=0.0),
                                            orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
                                  covariance=np.zeros(36, np.float64))
        out.append(Detection(
            header=header,
            results=[WithPose(hypothesis=Hypothesis(class_id=str(class_id), score=float(score)),
                              pose=pose)],
            bbox=Box(center=centre, size_x=float(x1 - x0), size_y=float(y1 - y0)),
            id=str(ident)))
    return types[DETECTION_ARRAY](header=header, detections=out)


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


def scale_camera_info(info, width: int, height: int, header=None, undistorted: bool = False):
    """
    Return the visible camera's info for an image resized to width x height.

    Published as fused/camera_info; ``undistorted``: the image was undistorted (D all zero).
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
        width=int(width), distortion_model=info.distortion_model,
        d=np.zeros(len(info.d)) if undistorted else np.asarray(info.d),
        k=K, r=np.asarray(info.r, np.float64), p=P, binning_x=info.binning_x,
        binning_y=info.binning_y, roi=info.roi)


# --- the topics: every name the package uses, relative to the node's namespace ------------------
# (launch/fusion.launch.py repeats the three input defaults; test/test_messages.py checks them)

INPUT_TOPICS = {'thermal': 'thermal/image_raw', 'visible': 'rgb/image_raw'}
CAMERA_INFO_TOPIC = 'rgb/camera_info'
THERMAL_INFO_TOPIC = 'thermal/camera_info'  # read by the node with registration.undistort
COMPRESSED_SUFFIX = '/compressed'  # image_transport's compressed topic: base topic + suffix
DIAGNOSTICS_TOPIC = '/diagnostics'
FUSED_TOPIC = 'fused/image'
FUSED_INFO_TOPIC = 'fused/camera_info'
LABELS_TOPIC = 'semantic/labels'
TARGETS_TOPIC = 'semantic/targets'
DETECTIONS_TOPIC = 'semantic/detections'
OVERLAY_TOPIC = 'semantic/overlay'
# every topic the node (and the bag replay) publishes for a fused pair, relative to the
# node's namespace, with its message type; the overlay only when asked for
OUTPUT_TYPES = {
    FUSED_TOPIC: IMAGE,
    FUSED_INFO_TOPIC: CAMERA_INFO,
    LABELS_TOPIC: IMAGE,
    TARGETS_TOPIC: IMAGE,
    DETECTIONS_TOPIC: DETECTION_ARRAY,
    OVERLAY_TOPIC: IMAGE,
}
# written by the replay for every pair (the node sends the targets and detections, as the
# overlay, only while something subscribes to them)
OUTPUT_TOPICS = tuple(topic for topic in OUTPUT_TYPES if topic != OVERLAY_TOPIC)
# image_transport's compressed transport of the image outputs (``output.compressed``,
# ``replay --compressed-output``): the image topic + /compressed, with the format each uses;
# masks are lossless (png), pictures jpeg
COMPRESSED_FORMATS = {FUSED_TOPIC: 'jpeg', LABELS_TOPIC: 'png', TARGETS_TOPIC: 'png',
                      OVERLAY_TOPIC: 'jpeg'}
COMPRESSED_OUTPUT_TYPES = {topic + COMPRESSED_SUFFIX: COMPRESSED for topic in COMPRESSED_FORMATS}
