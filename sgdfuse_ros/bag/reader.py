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
Open ROS 2 bags for reading and find their camera topics.

Accepted inputs (all through ``rosbags``, no ROS needed):

- a rosbag2 directory (``metadata.yaml`` + storage files), storage ``sqlite3`` or ``mcap``,
  metadata versions up to 9 (Humble writes 5, Jazzy 8 or 9);
- a standalone ``.mcap`` or ``.db3`` file;
- a rosbag2 directory whose ``metadata.yaml`` was never written (a recorder that crashed) but
  that holds exactly one storage file: that file is read on its own.

Every failure to open or to read becomes an :class:`InputError` (one line); a failure in the
middle of the stream (a truncated recording) is raised as :class:`BagReadError`, which says how
many messages were read before it, so a replay can keep what it has.

Topic discovery (``choose_topics``) looks at message types, the first message's encoding and the
topic names: thermal is a single-channel ``Image`` (mono8, mono16, 16UC1, 32FC1) or a
``CompressedImage`` whose name says thermal (thermal, ir, lwir, flir, ...); visible is a colour
``Image`` (bgr8, rgb8, ...) or another ``CompressedImage``. Depth, mask and fusion-output topics
are never taken. An ambiguous bag is an error that lists the candidates and names the option
that settles it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath, PureWindowsPath
import re
from typing import Dict, Iterator, List, Optional, Tuple

from rosbags.rosbag2 import Reader

from ..config import load_yaml
from ..errors import ConfigError, error_line, InputError
from ..messages import CAMERA_INFO, COMPRESSED, deserialize, IMAGE

#: largest metadata.yaml read (it lists every storage file; 16 MB is tens of thousands)
METADATA_MAX_BYTES = 16 * 1024 * 1024
THERMAL_ENCODINGS = ('mono8', '8UC1', 'mono16', '16UC1', '32FC1')
COLOUR_ENCODINGS = ('bgr8', 'rgb8', 'bgra8', 'rgba8')
THERMAL_WORDS = {'thermal', 'therm', 'ir', 'lwir', 'mwir', 'tir', 'flir', 'boson', 'lepton',
                 'radiometric', 'thermography'}
VISIBLE_WORDS = {'rgb', 'color', 'colour', 'visible', 'vis', 'bgr'}
NEVER_WORDS = {'depth', 'disparity', 'mask', 'masks', 'label', 'labels', 'semantic', 'fused',
               'fusion', 'targets', 'overlay', 'confidence', 'segmentation', 'compresseddepth'}


class BagReadError(InputError):
    """The bag stopped being readable part-way (``messages_read`` were delivered before)."""

    def __init__(self, message: str, messages_read: int):
        super().__init__(message)
        self.messages_read = messages_read


def _hint(err: BaseException) -> str:
    text = str(err)
    if 'end magic' in text or 'magic is invalid' in text:
        return (' (the MCAP file is truncated or was never closed; `mcap recover` can rebuild '
                'it)')
    if 'malformed' in text or 'not a database' in text:
        return ' (the sqlite3 database is truncated or damaged)'
    return ''


def name_words(topic: str) -> set:
    """``/flir_boson/image_raw`` -> {'flir', 'boson', 'image', 'raw'}."""
    return {w for w in re.split(r'[^a-z0-9]+', topic.lower()) if w}


@dataclass
class TopicSummary:
    name: str
    msgtype: str
    count: int                      # messages in the bag (0 when the storage does not say)
    connections: list = field(repr=False, default_factory=list)
    encoding: Optional[str] = None  # Image: first message's encoding; CompressedImage: format

    @property
    def kind(self) -> str:
        return {IMAGE: 'Image', COMPRESSED: 'CompressedImage',
                CAMERA_INFO: 'CameraInfo'}.get(self.msgtype, self.msgtype)

    def describe(self) -> str:
        enc = f' {self.encoding}' if self.encoding else ''
        return f'{self.name} ({self.kind}{enc}, {self.count} msgs)'


class BagInput:
    """An open input bag: its topics and a stream of ``(topic, msgtype, log_time_ns, raw)``."""

    def __init__(self, path):
        self.path = Path(path)
        self.description = ''
        self.notes: List[str] = []
        self._reader = None
        self._topics: Optional[Dict[str, TopicSummary]] = None
        self._open()

    # --- opening -------------------------------------------------------------------------------
    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise InputError(f'bag not found: {path}')
        target = path
        if path.is_dir():
            meta = path / 'metadata.yaml'
            if meta.is_file():
                self.description = self._describe_directory(meta)
            else:
                files = sorted(p for p in path.iterdir()
                               if p.suffix in ('.db3', '.mcap') and p.is_file())
                if not files:
                    raise InputError(f'not a ROS 2 bag: {path} has no metadata.yaml and no '
                                     f'.db3/.mcap file')
                if len(files) > 1:
                    raise InputError(f'{path} has no metadata.yaml and {len(files)} storage '
                                     f'files; run `ros2 bag reindex {path}` first, or pass one '
                                     f'file')
                target = files[0]
                self.notes.append(f'{path} has no metadata.yaml; read {target.name} on its own')
        if target.is_file():
            if target.suffix not in ('.db3', '.mcap'):
                raise InputError(f'not a ROS 2 bag: {target} (expected a bag directory, a .mcap '
                                 f'or a .db3 file)')
            self._check_magic(target)
            self.description = self.description or (
                'standalone MCAP file' if target.suffix == '.mcap' else 'standalone sqlite3 file')
        try:
            reader = Reader(target)
            reader.open()
        except InputError:
            raise
        except Exception as err:  # rosbags, apsw, yaml and OS errors alike
            raise InputError(f'cannot open bag {path}: {error_line(err)}{_hint(err)}') from None
        self._reader = reader

    @staticmethod
    def _check_magic(path: Path) -> None:
        """Reject files that are plainly not the storage they claim to be."""
        try:
            with path.open('rb') as handle:
                head = handle.read(16)
        except OSError as err:
            raise InputError(f'cannot read {path}: {error_line(err)}') from None
        if path.suffix == '.mcap' and not head.startswith(b'\x89MCAP'):
            raise InputError(f'not an MCAP file: {path}')
        if path.suffix == '.db3' and not head.startswith(b'SQLite format 3\x00'):
            raise InputError(f'not an sqlite3 database: {path}')

    @staticmethod
    def _describe_directory(meta: Path) -> str:
        """Check metadata.yaml's shape and that every file it names is inside the bag folder."""
        try:
            document = read_metadata(meta)
        except ConfigError as err:
            raise InputError(str(err)) from None
        except Exception as err:
            raise InputError(f'cannot read {meta}: {error_line(err)}') from None
        info = document.get('rosbag2_bagfile_information') if isinstance(document, dict) \
            else None
        if not isinstance(info, dict):
            what = 'is empty' if document is None else 'has no rosbag2_bagfile_information mapping'
            raise InputError(f'{meta} {what}: not a rosbag2 metadata file (delete it to read '
                             'the storage file on its own, or `ros2 bag reindex` the folder)')
        named = list(info.get('relative_file_paths') or [])
        named += [f.get('path') for f in info.get('files') or [] if isinstance(f, dict)]
        for name in named:
            if not isinstance(name, str) or not name.strip():
                raise InputError(f'{meta} names a storage file that is not a path: '
                                 f'{str(name)[:80]!r}')
            parts = PurePath(name).parts
            if PurePath(name).is_absolute() or '..' in parts or PureWindowsPath(name).anchor:
                raise InputError(f'{meta} names {name[:120]!r}, outside the bag folder '
                                 f'{meta.parent}: refused (a bag holds its own files)')
        return (f"rosbag2 directory ({info.get('storage_identifier', '?')}, "
                f"metadata version {info.get('version', '?')})")

    # --- topics ----------------------------------------------------------------------------------
    @property
    def topics(self) -> Dict[str, TopicSummary]:
        if self._topics is None:
            topics: Dict[str, TopicSummary] = {}
            for conn in self._reader.connections:
                entry = topics.get(conn.topic)
                if entry is None:
                    entry = topics[conn.topic] = TopicSummary(conn.topic, conn.msgtype, 0)
                entry.connections.append(conn)
                entry.count += int(conn.msgcount or 0)
            self._topics = topics
        return self._topics

    def peek_encoding(self, topic: str) -> Optional[str]:
        """Return the first message's encoding (Image) or format (CompressedImage); cached."""
        entry = self.topics[topic]
        if entry.encoding is not None or entry.msgtype not in (IMAGE, COMPRESSED):
            return entry.encoding
        stream = self._reader.messages(connections=entry.connections)
        try:
            _, _, raw = next(stream)
            msg = deserialize(raw, entry.msgtype)
            entry.encoding = str(msg.encoding if entry.msgtype == IMAGE else msg.format)
        except StopIteration:
            entry.encoding = None
        except Exception:  # an unreadable first message: leave it to the replay to count
            entry.encoding = None
        finally:
            stream.close()
        return entry.encoding

    # --- messages --------------------------------------------------------------------------------
    def messages(self, topics) -> Iterator[Tuple[str, str, int, bytes]]:
        """``(topic, msgtype, log_time_ns, raw_cdr)`` in log-time order for the given topics."""
        wanted = [conn for name in topics for conn in self.topics[name].connections]
        count = 0
        stream = self._reader.messages(connections=wanted)
        try:
            while True:
                try:
                    conn, log_time, raw = next(stream)
                except StopIteration:
                    return
                except Exception as err:
                    raise BagReadError(f'bag {self.path} became unreadable after {count} '
                                       f'messages: {error_line(err)}', count) from None
                count += 1
                yield conn.topic, conn.msgtype, int(log_time), raw
        finally:
            stream.close()

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:
                pass
            self._reader = None

    def __enter__(self) -> 'BagInput':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_bag(path) -> BagInput:
    return BagInput(path)


# --- topic discovery -----------------------------------------------------------------------------

@dataclass
class CameraTopics:
    thermal: TopicSummary
    visible: TopicSummary
    visible_info: Optional[TopicSummary] = None
    thermal_info: Optional[TopicSummary] = None
    automatic: bool = True

    def describe(self) -> str:
        how = 'found' if self.automatic else 'given'
        info = (self.visible_info.name if self.visible_info
                else 'none (fused/camera_info uncalibrated)')
        return (f'topics ({how}): thermal={self.thermal.describe()} '
                f'rgb={self.visible.describe()} rgb_info={info}')

    def as_dict(self) -> dict:
        """Return the topics as the replay report names them (after the rgb/... topics)."""
        def one(t):
            return None if t is None else {'topic': t.name, 'type': t.msgtype,
                                           'encoding': t.encoding, 'count': t.count}
        return {'thermal': one(self.thermal), 'rgb': one(self.visible),
                'rgb_info': one(self.visible_info), 'thermal_info': one(self.thermal_info),
                'chosen': 'automatic' if self.automatic else 'given'}


def _image_topics(bag: BagInput) -> List[TopicSummary]:
    return [t for t in bag.topics.values() if t.msgtype in (IMAGE, COMPRESSED)]


def _listing(bag: BagInput) -> str:
    images = _image_topics(bag)
    if not images:
        names = ', '.join(sorted(bag.topics)) or 'none'
        return f'no image topics (topics: {names})'
    for t in images:
        bag.peek_encoding(t.name)
    return 'image topics: ' + '; '.join(t.describe() for t in images)


def _thermal_like(bag: BagInput, t: TopicSummary) -> bool:
    if t.msgtype == IMAGE:
        return bag.peek_encoding(t.name) in THERMAL_ENCODINGS
    return bool(name_words(t.name) & THERMAL_WORDS)


def _visible_like(bag: BagInput, t: TopicSummary) -> bool:
    if t.msgtype == IMAGE:
        return bag.peek_encoding(t.name) in COLOUR_ENCODINGS
    fmt = (bag.peek_encoding(t.name) or '').lower()
    return not (name_words(t.name) & THERMAL_WORDS) and 'depth' not in fmt


def _pick(candidates: List[TopicSummary], prefer: set, what: str, option: str,
          bag: BagInput) -> TopicSummary:
    if not candidates:
        raise InputError(f'bag {bag.path} has no {what} topic ({_listing(bag)}); '
                         f'name one with {option}')
    if len(candidates) == 1:
        return candidates[0]
    preferred = [t for t in candidates if name_words(t.name) & prefer]
    if len(preferred) == 1:
        return preferred[0]
    names = ', '.join(t.describe() for t in (preferred or candidates))
    raise InputError(f'bag {bag.path} has several possible {what} topics ({names}); '
                     f'choose one with {option}')


def _given(bag: BagInput, name: str, option: str, types=(IMAGE, COMPRESSED)) -> TopicSummary:
    entry = bag.topics.get(name)
    if entry is None:
        close = [t for t in bag.topics if t.rstrip('/').split('/')[-1] in name] or list(bag.topics)
        raise InputError(f'{option} {name}: no such topic in {bag.path} '
                         f"(topics: {', '.join(sorted(close)[:12])})")
    if entry.msgtype not in types:
        raise InputError(f'{option} {name}: type {entry.msgtype}, expected '
                         f"{' or '.join(types)}")
    bag.peek_encoding(name)
    return entry


def _info_for(bag: BagInput, image_topic: str) -> Optional[TopicSummary]:
    """
    Return the CameraInfo topic of the camera that publishes ``image_topic``.

    Same namespace as the image topic.
    """
    infos = [t for t in bag.topics.values() if t.msgtype == CAMERA_INFO]
    parts = image_topic.rstrip('/').split('/')
    for depth in range(len(parts) - 1, 0, -1):  # /a/b/image_raw/compressed -> /a/b, then /a
        prefix = '/'.join(parts[:depth])
        matches = [t for t in infos if t.name.rsplit('/', 1)[0] == prefix]
        if len(matches) == 1:
            return matches[0]
        if matches:
            named = [t for t in matches if t.name.endswith('/camera_info')]
            return named[0] if len(named) == 1 else None
    return None


def read_metadata(meta: Path):
    """
    Return the YAML document of a ``metadata.yaml`` (raises what reading or parsing raises).

    The one bounded YAML reader: at most ``METADATA_MAX_BYTES``, no aliases (a 1 kB file of
    billions of entries).
    """
    with Path(meta).open('rb') as handle:
        text = handle.read(METADATA_MAX_BYTES + 1).decode('utf-8')
    return load_yaml(text, str(meta), METADATA_MAX_BYTES)


def recorded_messages(path) -> Optional[int]:
    """
    Return the messages a rosbag2 folder's ``metadata.yaml`` says it holds, or None.

    The metadata alone is read (no storage file opened): an upper bound of the pairs the bag
    can give, cheap enough to look at every bag of a corpus before any is opened. The larger of
    the total and the sum over the topics; None when there is no readable count.
    """
    try:
        info = read_metadata(Path(path) / 'metadata.yaml')['rosbag2_bagfile_information']
        counts = [info['message_count']] + [
            topic['message_count'] for topic in info.get('topics_with_message_count') or ()]
    except Exception:  # noqa: B902 - no metadata, not YAML, another shape: no count known
        return None
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return None
    return max(counts[0], sum(counts[1:]))


def choose_topics(bag: BagInput, thermal: Optional[str] = None, visible: Optional[str] = None,
                  visible_info: Optional[str] = None) -> CameraTopics:
    """
    Return the thermal, visible and visible camera-info topics: the given ones, or found.

    ``visible`` and ``visible_info`` come from the ``--rgb-topic`` and ``--rgb-info-topic``
    options (named after the ROS camera topics they choose).
    """
    usable = [t for t in _image_topics(bag) if not (name_words(t.name) & NEVER_WORDS)]
    if thermal:
        thermal_topic = _given(bag, thermal, '--thermal-topic')
    else:
        thermal_topic = _pick([t for t in usable if _thermal_like(bag, t)
                               and t.name != visible], THERMAL_WORDS, 'thermal image',
                              '--thermal-topic', bag)
    if visible:
        visible_topic = _given(bag, visible, '--rgb-topic')
    else:
        visible_topic = _pick([t for t in usable if t.name != thermal_topic.name
                               and _visible_like(bag, t)], VISIBLE_WORDS, 'RGB image',
                              '--rgb-topic', bag)
    if visible_topic.name == thermal_topic.name:
        raise InputError(f'the thermal and RGB topics are the same ({visible_topic.name})')
    if visible_info:
        info = _given(bag, visible_info, '--rgb-info-topic', types=(CAMERA_INFO,))
    else:
        info = _info_for(bag, visible_topic.name)
    return CameraTopics(thermal_topic, visible_topic, info, _info_for(bag, thermal_topic.name),
                        automatic=not (thermal or visible))
