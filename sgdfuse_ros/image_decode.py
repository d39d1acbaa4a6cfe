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
The one way an encoded image (a file, a ``CompressedImage``'s data) becomes an array.

Every path goes through :func:`decode_image`: the node and the replay (compressed camera
messages), ``evaluate``, ``metrics``, ``make-bag``, ``adapt`` and ``train`` (image files). It

1. reads the width and height from the format's own header, before anything is decoded, and
   refuses more than ``max_pixels`` pixels (``limits.max_input_pixels``). Only formats whose size
   this module can read are accepted: PNG, JPEG (baseline, progressive, lossless; the markers
   are scanned as libjpeg scans them, stray bytes included), TIFF (classic, either byte order;
   tiles bounded too), BMP and PNM (PBM/PGM/PPM). Anything else (WebP, GIF, AVIF, JPEG 2000,
   BigTIFF, PAM, PFM, HDR, Sun raster, ...) is refused with one line, never handed to OpenCV;
2. decodes once, as stored (``cv2.IMREAD_UNCHANGED``: no EXIF rotation, no colour conversion,
   16 bits kept), so no metadata inside a file can make one camera's image differ from the
   other's, or what is fused from what is scored; every other view is derived from that one
   array (:func:`as_thermal`, :func:`as_visible`, :func:`as_reference_colour`);
3. keeps what the image libraries write on stderr while decoding (libjpeg's "Corrupt JPEG
   data ...", libpng and OpenCV warnings): each is counted (:func:`decoder_warnings`) and logged
   as one line, at most once per ``WARN_PERIOD_S`` per kind, instead of going straight to the
   terminal;
4. turns every failure into an :class:`InputError` of one line (never a raw OpenCV error).
"""

from __future__ import annotations

from collections import Counter
import logging
import os
from pathlib import Path
import re
import sys
import tempfile
import threading
import time
from typing import NamedTuple, Optional

import cv2
import numpy as np

from .errors import InputError, opencv_reason

log = logging.getLogger(__name__)

ACCEPTED = 'PNG, JPEG, TIFF, BMP, PNM'
WARN_PERIOD_S = 10.0


class SizeRefused(InputError):
    """An empty image, or more pixels than allowed, according to its header (before decoding)."""


class ImageHeader(NamedTuple):
    kind: str  # PNG, JPEG, TIFF, BMP, PNM
    width: int
    height: int
    tile_pixels: int = 0  # TIFF: pixels of one tile or strip buffer (0: none)


#: the default of ``limits.max_input_pixels`` (sgdfuse_ros/parameters.py takes it from here):
#: 2048x2048, chosen from the measured peak memory per megapixel (docs/reliability.md)
DEFAULT_MAX_PIXELS = 2048 * 2048


def default_max_pixels() -> int:
    return DEFAULT_MAX_PIXELS


# --- headers ----------------------------------------------------------------------------------

def _refused(kind: str) -> InputError:
    return InputError(f'{kind} images are not accepted (accepted: {ACCEPTED}; their size is '
                      f'read from the header before decoding)')


def _be16(data, i: int) -> int:
    return (data[i] << 8) | data[i + 1]


def _jpeg(data: bytes) -> ImageHeader:
    """Scan the markers as libjpeg does (garbage before a marker skipped) up to the first SOF."""
    n, i = len(data), 2
    while True:
        while True:  # next marker: skip to 0xFF, over fill bytes; 0xFF00 is no marker
            while i < n and data[i] != 0xFF:
                i += 1
            while i < n and data[i] == 0xFF:
                i += 1
            if i >= n:
                raise InputError('JPEG without a frame header (SOF marker): truncated or '
                                 'not a JPEG')
            marker = data[i]
            i += 1
            if marker != 0:
                break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or scan data before any SOF
            raise InputError('JPEG without a frame header (SOF marker) before its image data')
        if i + 2 > n:
            raise InputError('JPEG cut inside a marker segment')
        length = _be16(data, i)
        if length < 2:
            raise InputError(f'JPEG marker 0x{marker:02X} with an impossible length {length}')
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if length < 8 or i + 7 > n:
                raise InputError('JPEG frame header (SOF) cut short')
            return ImageHeader('JPEG', _be16(data, i + 5), _be16(data, i + 3))
        i += length


def _tiff(data: bytes) -> ImageHeader:
    order = 'little' if bytes(data[:2]) == b'II' else 'big'

    def num(i: int, size: int) -> int:
        if i + size > len(data):
            raise InputError('TIFF header cut short')
        return int.from_bytes(data[i:i + size], order)

    ifd = num(4, 4)
    count = num(ifd, 2)
    values = {}
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, kind, n = num(entry, 2), num(entry + 2, 2), num(entry + 4, 4)
        if tag not in (256, 257, 322, 323):  # width, length, tile width, tile length
            continue
        if n != 1 or kind not in (3, 4):
            raise InputError(f'TIFF tag {tag} is not a single SHORT or LONG')
        value = num(entry + 8, 2) if kind == 3 else num(entry + 8, 4)
        values[tag] = max(value, values.get(tag, 0))  # a repeated tag: the larger counts
    if 256 not in values or 257 not in values:
        raise InputError('TIFF without ImageWidth/ImageLength in its first directory')
    tile = values.get(322, 0) * values.get(323, 0)
    return ImageHeader('TIFF', values[256], values[257], tile)


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise InputError('BMP header cut short')
    size = int.from_bytes(data[14:18], 'little')
    if size >= 36:  # as OpenCV reads it: int32 width and height (negative: top-down)
        width = int.from_bytes(data[18:22], 'little', signed=True)
        height = abs(int.from_bytes(data[22:26], 'little', signed=True))
    elif size == 12:
        width, height = int.from_bytes(data[18:20], 'little'), int.from_bytes(data[20:22],
                                                                              'little')
    else:
        raise InputError(f'BMP with an unknown header size {size}')
    if width < 0:
        raise InputError(f'BMP with a negative width {width}')
    return ImageHeader('BMP', width, height)


def _pnm(data: bytes) -> ImageHeader:
    """Width and height as OpenCV's PxM reader parses them (comments, whitespace)."""
    i, numbers = 2, []
    n = len(data)
    while len(numbers) < 2:
        while i < n and not chr(data[i]).isdigit():
            if data[i] == ord('#'):
                while i < n and data[i] not in (10, 13):
                    i += 1
                i += 1
            elif chr(data[i]).isspace():
                i += 1
            else:
                raise InputError(f'PNM header with an unexpected byte 0x{data[i]:02x}')
        start = i
        while i < n and chr(data[i]).isdigit():
            i += 1
        if i == start or i >= n:
            raise InputError('PNM header cut short')
        if i - start > 10 or int(data[start:i]) > 0x7FFFFFFF:  # OpenCV asserts the same
            raise InputError(f'PNM size {data[start:i][:20].decode()} is not a 32-bit number')
        numbers.append(int(data[start:i]))
    return ImageHeader('PNM', numbers[0], numbers[1])


def read_header(data) -> ImageHeader:
    """
    Format, width and height of an encoded image (bytes or a uint8 array), from its header.

    :class:`InputError` (one line) for a format this module does not size, or a header that
    cannot be read. Signatures are checked as OpenCV checks them (its first match decodes).
    """
    data = memoryview(data)
    if data.ndim != 1 or data.format != 'B':
        data = data.cast('B')
    head = bytes(data[:16])
    if not head:
        raise InputError('no image data (0 bytes)')
    if head[4:8] == b'ftyp':  # OpenCV tries AVIF first
        raise _refused('AVIF/HEIF')
    if head[:4] == b'GIF8':
        raise _refused('GIF')
    if head[:8] == b'\x89PNG\r\n\x1a\n':
        if len(data) < 24 or bytes(data[12:16]) != b'IHDR':
            raise InputError('PNG without its IHDR header')
        return ImageHeader('PNG', int.from_bytes(data[16:20], 'big'),
                           int.from_bytes(data[20:24], 'big'))
    if head[:2] == b'BM':
        return _bmp(bytes(data[:32]))
    if head[:2] == b'#?':
        raise _refused('Radiance HDR')
    if head[:3] == b'\xff\xd8\xff':
        return _jpeg(data)
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        raise _refused('WebP')
    if head[:4] == b'\x59\xa6\x6a\x95':
        raise _refused('Sun raster')
    if len(head) >= 3 and head[0:1] == b'P' and 0x31 <= head[1] <= 0x36 \
            and chr(head[2]).isspace():
        return _pnm(bytes(data[:4096]))
    if head[:2] in (b'P7', b'PF', b'Pf'):
        raise _refused('PAM/PFM')
    if head[:4] in (b'II*\x00', b'MM\x00*'):
        return _tiff(data)
    if head[:4] in (b'II+\x00', b'MM\x00+'):
        raise _refused('BigTIFF')
    if head[:12] == b'\x00\x00\x00\x0cjP  \r\n\x87\n' or head[:4] == b'\xff\x4f\xff\x51':
        raise _refused('JPEG 2000')
    if head[:4] == b'\x76\x2f\x31\x01':
        raise _refused('OpenEXR')
    raise InputError(f'not an image in an accepted format ({ACCEPTED}); it starts with '
                     f'{head[:8].hex(" ")}')


def check_header(header: ImageHeader, max_pixels: int) -> None:
    """Refuse an empty image or more than ``max_pixels`` pixels (one line)."""
    w, h = header.width, header.height
    if w <= 0 or h <= 0:
        raise SizeRefused(f'{header.kind} header says {w}x{h} pixels (empty)')
    if max_pixels and (w * h > max_pixels or header.tile_pixels > max_pixels):
        what = (f'{w}x{h} pixels' if w * h > max_pixels
                else f'tiles of {header.tile_pixels} pixels')
        raise SizeRefused(f'{header.kind} header says {what}, more than '
                          f'limits.max_input_pixels={max_pixels} (from its header, before '
                          'decoding)')


# --- what the image libraries print while decoding --------------------------------------------

_LIBRARY_LINE = re.compile(r'^(Corrupt JPEG data|Premature end of JPEG|Invalid |Warning|Bogus |'
                           r'Unsupported |Inconsistent |Improper |Not a JPEG|JPEG|libpng|'
                           r'\[ ?(WARN|ERROR|INFO)|OpenCV|TIFF|libtiff)')
_capture_lock = threading.Lock()
_capture_file = {'pid': None, 'file': None}
_warnings: Counter = Counter()
_last_logged: dict = {}


def _stderr_file():
    if _capture_file['pid'] != os.getpid():  # a forked child: its own file
        _capture_file['file'] = tempfile.TemporaryFile()
        _capture_file['pid'] = os.getpid()
    return _capture_file['file']


def _decode_capturing(data: np.ndarray):
    """``cv2.imdecode(data, IMREAD_UNCHANGED)`` with fd 2 kept: (image or None, lines, error)."""
    with _capture_lock:
        try:
            sys.stderr.flush()
            capture = _stderr_file()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            saved = None  # no stderr to keep (closed): decode as is
        if saved is not None:
            os.dup2(capture.fileno(), 2)
        try:
            try:
                image, error = cv2.imdecode(data, cv2.IMREAD_UNCHANGED), None
            except cv2.error as err:
                image, error = None, err
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
        text = b''
        if saved is not None:
            capture.seek(0)
            text = capture.read(65536)
            capture.seek(0)
            capture.truncate()
    lines = text.decode('utf-8', 'replace').splitlines()
    ours = [line.strip() for line in lines if _LIBRARY_LINE.match(line.strip())]
    others = [line for line in lines if line.strip() and not _LIBRARY_LINE.match(line.strip())]
    if others:  # another thread's output in the same moment: give it back
        sys.stderr.write('\n'.join(others) + '\n')
    return image, ours, error


def _library_text(line: str) -> str:
    """Strip OpenCV's log prefix from a library line (``[ WARN:0@0.07] global file.cpp:123 f``)."""
    return re.sub(r'^\[ ?\w+:\d+@[\d.]+\] global \S+ \w+ ', '', line)


def _note_warnings(lines, what: str) -> None:
    now = time.monotonic()
    for line in dict.fromkeys(_library_text(line) for line in lines):
        kind = line.split(':')[0][:40]
        _warnings[kind] += 1
        last = _last_logged.get(kind)
        if last is None or now - last >= WARN_PERIOD_S:
            _last_logged[kind] = now
            log.warning('%s: the image library warned while decoding: %s (%d such warnings so '
                        'far; the image was used)', what, line[:160], _warnings[kind])


def decoder_warnings() -> dict:
    """Return the decoder warnings seen by this process so far, by kind ('Corrupt JPEG data')."""
    return dict(_warnings)


# --- the one decode -----------------------------------------------------------------------------

def decode_image(data, max_pixels: Optional[int] = None, what: str = 'image') -> np.ndarray:
    """
    Decode ``data`` (bytes or a uint8 array) as stored, after its header passed the checks.

    ``max_pixels`` None: the default ``limits.max_input_pixels``; 0: no limit (only for
    trusted, already sized data). The result is uint8 or uint16, HxW or HxWx3/4 (BGR order).
    A floating-point image is refused: a file or compressed message holds 8- or 16-bit images
    (a float thermal camera sends raw 32FC1 messages).
    """
    buffer = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) \
        else np.asarray(data, np.uint8).reshape(-1)
    header = read_header(buffer)
    check_header(header, default_max_pixels() if max_pixels is None else max_pixels)
    image, lines, error = _decode_capturing(buffer)
    if lines:
        _note_warnings(lines, what)
    if error is not None:
        raise InputError(f'{header.kind} {header.width}x{header.height} does not decode '
                         f'({opencv_reason(error)})')
    if image is None or image.size == 0:
        first = f': {_library_text(lines[0])[:120]}' if lines else ''
        raise InputError(f'{header.kind} {header.width}x{header.height} does not decode '
                         f'(corrupt or unsupported{first})')
    if image.shape[:2] != (header.height, header.width):
        raise InputError(f'{header.kind} decodes to {image.shape[1]}x{image.shape[0]}, not the '
                         f'{header.width}x{header.height} of its header')
    if image.dtype.kind == 'f':
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise InputError(f'{image.dtype} {header.kind} ({channels} channel(s)): floating-point '
                         'images are not supported in files or compressed messages (8- or '
                         '16-bit integers; a float thermal camera sends raw 32FC1 messages)')
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f'{header.kind} holds {image.dtype} pixels (8- or 16-bit only)')
    return image


# --- the views every command takes of the one decoded array -----------------------------------

def as_thermal(image: np.ndarray) -> np.ndarray:
    """Single channel, as stored (8 or 16 bit); a colour file's luminance."""
    if image.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_BGR2GRAY)
    return image


def as_visible(image: np.ndarray) -> np.ndarray:
    """
    uint8 BGR: what ``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`` gives for the file.

    16 bits keep their high byte, gray is repeated into three channels, alpha is dropped.
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    return image


# The reference evaluator reads every file as colour: the same view.
as_reference_colour = as_visible


def read_file_bytes(path, max_pixels: Optional[int] = None) -> bytes:
    """
    Return the bytes of an image file, refusing one far larger than any allowed image needs.

    Bounded by ``max_pixels`` x 32 bytes (4 channels of 64 bits, uncompressed) plus 16 MiB of
    metadata, checked from the file's size before it is read.
    """
    path = Path(path)
    limit = default_max_pixels() if max_pixels is None else max_pixels
    try:
        size = path.stat().st_size
        if limit and size > limit * 32 + (16 << 20):
            raise InputError(f'{path} is {size} bytes, more than an image of '
                             f'limits.max_input_pixels={limit} pixels can need')
        return path.read_bytes()
    except OSError as err:
        raise InputError(f'cannot read {path}: {err.strerror or err}') from None
