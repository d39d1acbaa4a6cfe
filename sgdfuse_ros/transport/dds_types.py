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
ROS 2 message types as Cyclone DDS topic types, built from ``rosbags``' definitions.

A ROS 2 graph sees a DDS topic as a ROS topic when its name is ``rt/<ros name>`` and its type is
named ``<pkg>::msg::dds_::<Name>_`` with the message's fields, in order, as plain (final) IDL
structs. :func:`idl_type` builds such a ``cyclonedds`` IdlStruct from the definition ``rosbags``
holds for the ROS 2 Humble message, so discovery and type matching see the real type.

The structs serve only for discovery and type information: :mod:`sgdfuse_ros.transport.dds`
writes and takes the CDR bytes that ``rosbags`` produces (about 1 ms for a 640x512 image) rather
than going through cyclonedds' Python serialiser, which is far too slow for images.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cyclonedds.idl import make_idl_struct
from cyclonedds.idl import types as idl
import numpy as np
from rosbags.typesys.store import Nodetype

from ..messages import typestore

BASE_TYPES = {
    'bool': bool, 'byte': idl.byte, 'char': idl.uint8, 'int8': idl.int8, 'uint8': idl.uint8,
    'int16': idl.int16, 'uint16': idl.uint16, 'int32': idl.int32, 'uint32': idl.uint32,
    'int64': idl.int64, 'uint64': idl.uint64, 'float32': idl.float32, 'float64': idl.float64,
    'string': str,
}


def dds_type_name(ros_typename: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_`` (rosidl's DDS naming)."""
    parts = ros_typename.split('/')
    if len(parts) != 3 or not all(parts):
        raise ValueError(f'not a ROS 2 type name: {ros_typename!r} (expected pkg/msg/Name)')
    package, kind, name = parts
    return f'{package}::{kind}::dds_::{name}_'


def _field_type(node: Any) -> Any:
    kind, detail = node
    if kind == Nodetype.BASE:
        name, bound = detail
        if name == 'string' and bound:
            return idl.bounded_str[bound]
        try:
            return BASE_TYPES[name]
        except KeyError:
            raise ValueError(f'unsupported ROS field type {name!r}') from None
    if kind == Nodetype.NAME:
        return idl_type(detail)
    if kind == Nodetype.ARRAY:
        element, length = detail
        return idl.array[_field_type(element), length]
    if kind == Nodetype.SEQUENCE:
        element, bound = detail
        return idl.sequence[_field_type(element), bound] if bound else \
            idl.sequence[_field_type(element)]
    raise ValueError(f'unsupported ROS field node {kind!r}')


@lru_cache(maxsize=None)
def idl_type(ros_typename: str):
    """Return the cyclonedds IdlStruct class for a ROS 2 message type (cached per type)."""
    try:
        _constants, fields = typestore().fielddefs[ros_typename]
    except KeyError:
        raise ValueError(f'unknown ROS 2 message type {ros_typename!r}') from None
    if not fields:  # ROS 2 gives empty messages one uint8 member
        fields = [('structure_needs_at_least_one_member',
                   (_base_node('uint8')))]
    members = {name: _field_type(node) for name, node in fields}
    class_name = ros_typename.replace('/', '_')
    return make_idl_struct(class_name, dds_type_name(ros_typename), members)


def _base_node(name: str):
    return (Nodetype.BASE, (name, 0))


def idl_sample(msg: Any):
    """Convert a ``rosbags`` message to an instance of its IdlStruct (slow; for checks)."""
    cls = idl_type(msg.__msgtype__)
    values = {}
    for name in cls.__annotations__:
        value = getattr(msg, name)
        if hasattr(value, '__msgtype__'):
            value = idl_sample(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, (list, tuple)):
            value = [idl_sample(v) if hasattr(v, '__msgtype__') else v for v in value]
        values[name] = value
    return cls(**values)
