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
Write ROS 2 bags that ROS 2 Humble can play.

Default output: rosbag2 **metadata version 8, sqlite3 storage**. Humble (which itself records
version 5) reads a metadata file field by field, by version number, and does not reject a newer
one; what it needs is what versions 4 to 8 share:

- ``offered_qos_profiles`` as a **YAML string** holding a list of profiles with integer enums
  (``history: 1, reliability: 1, durability: 2, liveliness: 1``) and ``{sec, nsec}`` durations.
  Version 9 (Jazzy) writes a YAML list with names instead; Humble's parser fails on it
  ("yaml-cpp: bad conversion"). rosbags writes the string form for version 8 (``dump_qos_v8``).
- ``custom_data`` a mapping when present. rosbags writes ``null`` when there is none; parsers
  that read the field want a map, so this writer always stores a few ``sgdfuse_ros.*`` keys.

Profiles offered for every topic: reliable, volatile, keep-last 10, durations 0 ("unspecified",
i.e. the middleware default), liveliness automatic. A reliable offer is compatible with both
reliable and best-effort subscribers, so ``ros2 bag play`` output reaches the node (best effort
by default) and rviz (reliable) alike. Version 9 and MCAP are available on request.

``ros_distro`` (what ``ros2 bag info`` shows as "ROS Distro"): the distribution the caller names,
by default the one that matches the version written (8: humble, 9: jazzy). rosbags writes its
own name there; :func:`close_with_distro` puts the chosen one into metadata.yaml and the copy
the storage file keeps.

The writer streams: ``rosbags`` appends each message to the database (or to 1 MiB MCAP chunks),
so memory does not grow with the bag. What was written is kept when something goes wrong:
:meth:`BagWriter.checkpoint` (called by the commands after each frame) commits the sqlite3
transaction, and a failed write (a full disk) or an
exception closes the bag with what was committed (:meth:`BagWriter.close_partial`): metadata
written, nothing left in a journal. Only a bag that holds no message yet is removed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
import re
import shutil
from typing import Dict, Optional, Sequence

from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2 import writer as rosbags_writer

from ..errors import error_line, InputError
from ..messages import serialize, typestore

STORAGES = ('sqlite3', 'mcap')
VERSIONS = (8, 9)
DISTRO_FOR_VERSION = {8: 'humble', 9: 'jazzy'}  # the distribution each version is written for
DISTRO_NAME = re.compile(r'^[a-z][a-z0-9_]{0,31}$')


def check_distro(name: str) -> str:
    """Return ``name`` when it is a plausible ROS distribution name (lower-case word)."""
    if not DISTRO_NAME.match(str(name)):
        raise InputError(f"ROS distribution name must be a lower-case word like 'jazzy', "
                         f'not {name!r}')
    return str(name)


def _with_distro(data, distro: str):
    """Copy of rosbags' metadata mapping (either nesting) with ``ros_distro`` replaced."""
    if isinstance(data, dict):
        if 'ros_distro' in data:
            return {**data, 'ros_distro': distro}
        info = data.get('rosbag2_bagfile_information')
        if isinstance(info, dict) and 'ros_distro' in info:
            return {**data, 'rosbag2_bagfile_information': {**info, 'ros_distro': distro}}
    return data


def close_with_distro(writer, distro: str) -> None:
    """
    Close a rosbags ``Writer`` so that its metadata names ``distro``.

    rosbags (0.11) builds the metadata inside ``Writer.close`` with a fixed ``ros_distro``
    and dumps it with ruamel's ``YAML`` (metadata.yaml and the copy kept in the storage file):
    while it closes, that ``YAML`` is one that writes ``distro`` instead. Should another rosbags
    version write the metadata differently, metadata.yaml is corrected afterwards.
    """
    original = getattr(rosbags_writer, 'YAML', None)
    if isinstance(original, type):
        class DistroYAML(original):

            def dump(self, data, *args, **kwargs):
                return super().dump(_with_distro(data, distro), *args, **kwargs)
        rosbags_writer.YAML = DistroYAML
    try:
        writer.close()
    finally:
        if isinstance(original, type):
            rosbags_writer.YAML = original
    metapath = Path(writer.path) / 'metadata.yaml'
    if metapath.is_file():
        text = metapath.read_text(encoding='utf-8')
        fixed = re.sub(r'^(\s*ros_distro:).*$', lambda m: f'{m.group(1)} {distro}', text,
                       flags=re.MULTILINE)
        if fixed != text:  # whole or not at all: a full disk keeps the bag readable
            tmp = metapath.with_name('.metadata.yaml.tmp')
            try:
                tmp.write_text(fixed, encoding='utf-8')
                os.replace(tmp, metapath)
            finally:
                tmp.unlink(missing_ok=True)


def default_qos(depth: int = 10):
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth, reliability=QosReliability.RELIABLE,
               durability=QosDurability.VOLATILE, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


def looks_like_bag(path: Path) -> bool:
    """
    Tell whether ``path`` is a rosbag2 directory or a standalone storage file.

    A directory counts with metadata + storage files only.
    """
    if path.is_file():
        return path.suffix in ('.db3', '.mcap')
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    allowed = {'.db3', '.mcap', '.yaml', '.zstd', '.db3-journal', '.tmp'}
    return all(p.is_file() and (p.suffix in allowed or p.name.endswith('.db3-journal'))
               for p in entries) and (not entries or any(
                   p.name == 'metadata.yaml' or p.suffix in ('.db3', '.mcap') for p in entries))


def check_replaceable(path, overwrite: bool = False) -> bool:
    """
    Refuse an existing ``path`` without ``overwrite``, or one that is not a bag; touch nothing.

    Return whether a previous bag is there (to be replaced once the new one is ready).
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise InputError(f'output bag already exists: {path} (choose another --out, or '
                             f'pass --overwrite)')
        if not looks_like_bag(path):
            raise InputError(f'refusing to overwrite {path}: it does not look like a ROS 2 bag')
        return True
    if not path.parent.is_dir():
        raise InputError(f'folder for the output bag does not exist: {path.parent}')
    return False


def prepare_output(path, overwrite: bool = False) -> Path:
    """Make sure ``path`` can be created: absent, or an old bag removed with ``overwrite``."""
    path = Path(path)
    if check_replaceable(path, overwrite):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if not path.parent.is_dir():
        raise InputError(f'folder for the output bag does not exist: {path.parent}')
    return path


def known_topic(types: Dict[str, str], topic: str, msgtype: str) -> bool:
    """Tell whether ``topic`` is declared already (with this type; another type is refused)."""
    if topic not in types:
        return False
    if types[topic] != msgtype:
        raise InputError(f'topic {topic} written with two types: {types[topic]} and {msgtype}')
    return True


def serialised(types: Dict[str, str], topic: str, msg, msgtype: Optional[str] = None):
    """
    Return ``(CDR bytes, type)`` of a message object, or of raw CDR bytes as they are.

    Raw bytes need ``msgtype``, or a ``topic`` declared in ``types`` (its type is theirs).
    """
    if isinstance(msg, (bytes, bytearray, memoryview)):
        if msgtype is None and topic not in types:
            raise ValueError('raw bytes need a msgtype')
        return msg, msgtype or types[topic]
    msgtype = msgtype or msg.__msgtype__
    return serialize(msg, msgtype), msgtype


class BagWriter:
    """``with BagWriter(path) as bag: bag.write("/topic", log_time_ns, msg)``."""

    def __init__(self, path, storage: str = 'sqlite3', version: int = 8,
                 overwrite: bool = False, custom_data: Optional[Dict[str, str]] = None,
                 ros_distro: Optional[str] = None):
        if storage not in STORAGES:
            raise InputError(f"unknown storage '{storage}' (one of: {', '.join(STORAGES)})")
        if int(version) not in VERSIONS:
            raise InputError(f'unsupported bag version {version} (8 or 9; 8 plays in Humble)')
        self.ros_distro = check_distro(ros_distro if ros_distro is not None
                                       else DISTRO_FOR_VERSION[int(version)])
        self.path = prepare_output(path, overwrite)
        self.storage = storage
        self.version = int(version)
        self.custom_data = {'sgdfuse_ros.writer': 'sgdfuse_ros'}
        self.custom_data.update({str(k): str(v) for k, v in (custom_data or {}).items()})
        self.counts: Dict[str, int] = {}
        self._connections: Dict[str, object] = {}
        self._types: Dict[str, str] = {}
        self._writer = None
        self._committed = None     # (rosbags counts, min, max, our counts) at the last commit
        self.digest = OutputDigest()

    def open(self) -> 'BagWriter':  # noqa: A003  (file-like API)
        plugin = StoragePlugin.SQLITE3 if self.storage == 'sqlite3' else StoragePlugin.MCAP
        try:
            self._writer = Writer(self.path, version=self.version, storage_plugin=plugin)
            for key, value in self.custom_data.items():
                self._writer.set_custom_data(key, value)
            self._writer.open()
        except Exception as err:
            self._writer = None
            raise InputError(f'cannot create bag {self.path}: {error_line(err, 160)}') from None
        conn = self._connection()
        if conn is not None:
            # commits at every frame (checkpoint) without an fsync each: they survive the
            # process (a signal, a full disk), and the bag is fsynced when it is closed
            conn.execute('PRAGMA synchronous=OFF')
        self._snapshot()
        return self

    def _snapshot(self) -> None:
        w = self._writer
        self._committed = (dict(w.counts), w.min_timestamp, w.max_timestamp, dict(self.counts))

    def _connection(self):
        return getattr(getattr(self._writer, 'storage', None), 'conn', None)

    def checkpoint(self) -> None:
        """
        Make the messages written so far survive a later failure (call at frame boundaries).

        sqlite3: commits the open transaction; MCAP appends as it goes, so only the counts are
        remembered.
        """
        if self._writer is None:
            return
        conn = self._connection()
        if conn is not None:
            conn.commit()
        self._snapshot()

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def close_partial(self) -> Optional[str]:
        """
        Close after a failure with what the last checkpoint holds; None, or why it failed.

        sqlite3: the unfinished transaction is rolled back (which frees the journal) and the
        metadata is written with the counts of the committed messages. A bag with no
        committed message is removed instead.
        """
        if self._writer is None:
            return None
        writer = self._writer
        conn = self._connection()
        if conn is not None:
            try:
                conn.rollback()
            except Exception:  # noqa: B902 - closing below says whether the bag survived
                pass
            counts, low, high, ours = self._committed
            writer.counts, writer.min_timestamp, writer.max_timestamp = dict(counts), low, high
            self.counts = dict(ours)
        if not any(self.counts.values()):
            self.abort()
            return None
        self._writer = None
        try:
            close_with_distro(writer, self.ros_distro)
        except Exception as err:  # noqa: B902
            try:
                writer.abort()
            except Exception:  # noqa: B902
                pass
            return error_line(err, 160)
        return None

    def add_topic(self, topic: str, msgtype: str, qos: Optional[Sequence] = None) -> None:
        """Declare a topic (done implicitly by ``write``); topics with no message stay listed."""
        if known_topic(self._types, topic, msgtype):
            return
        profiles = list(qos) if qos else [default_qos()]
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), offered_qos_profiles=profiles)
        self._types[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, msg, msgtype: Optional[str] = None) -> None:
        """Write a message object, or raw CDR bytes (then ``msgtype`` is required)."""
        data, msgtype = serialised(self._types, topic, msg, msgtype)
        self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(log_time_ns), data)
        self.counts[topic] += 1
        self.digest.add(topic, log_time_ns, data)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            conn = getattr(getattr(writer, 'storage', None), 'conn', None)
            if conn is not None:  # the closing commit is fsynced
                conn.commit()
                conn.execute('PRAGMA synchronous=FULL')
            close_with_distro(writer, self.ros_distro)

    def abort(self) -> None:
        """Stop and delete the half-written bag."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.abort()
            except Exception:
                pass
        if self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> 'BagWriter':
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.close_partial()
        return False


class OutputDigest:
    """
    SHA-256 over every message written: topic, log time and serialised (CDR) bytes, in order.

    Two runs that wrote the same messages have the same :attr:`hexdigest`, whatever storage held
    them (or none: :class:`NullWriter`); ``sgdfuse corpus`` records it per bag.
    """

    def __init__(self):
        self._hash = hashlib.sha256()

    def add(self, topic: str, log_time_ns: int, data) -> None:
        self._hash.update(f'{topic}\0{int(log_time_ns)}\0{len(data)}\0'.encode())
        self._hash.update(bytes(data) if not isinstance(data, bytes) else data)

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class NullWriter:
    """
    A writer that keeps no bag: each message is serialised, counted and digested, then dropped.

    What ``sgdfuse corpus`` uses without ``--write-bags`` (a corpus of fused bags can be large):
    the replay runs exactly as with a :class:`BagWriter`, and :attr:`digest` is the digest the
    bag would have had.
    """

    path = None

    def __init__(self):
        self.counts: Dict[str, int] = {}
        self._types: Dict[str, str] = {}
        self.digest = OutputDigest()

    def open(self) -> 'NullWriter':  # noqa: A003  (file-like API)
        return self

    def add_topic(self, topic: str, msgtype: str, qos: Optional[Sequence] = None) -> None:
        if known_topic(self._types, topic, msgtype):
            return
        self._types[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, msg, msgtype: Optional[str] = None) -> None:
        data, msgtype = serialised(self._types, topic, msg, msgtype)
        self.add_topic(topic, msgtype)
        self.counts[topic] += 1
        self.digest.add(topic, log_time_ns, data)

    def checkpoint(self) -> None:
        return None

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def close_partial(self) -> Optional[str]:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> 'NullWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False
