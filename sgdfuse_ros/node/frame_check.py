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
The checks every camera message passes before it may be paired.

One implementation for the node (both transports) and the bag replay, so a replay rejects exactly
what the node rejects.

Order: encoding and size from the header fields (cheap, before touching the payload), then the
payload itself (length, step, byte order; a compressed image's size from its format's header,
before it is decoded), then the decoded result again.
A failure is a :class:`Rejected` carrying the reason the accounting counts it under
(``encoding``, ``size`` or ``decode``).
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np

from .. import messages
from ..errors import InputError
from ..image_decode import SizeRefused
from ..pipeline.encodings import THERMAL_ENCODINGS, VISIBLE_ENCODINGS


class Rejected(InputError):

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


def short(text, limit: int = 40) -> str:
    """Return a field from a message, safe to put in a log line (bounded, printable)."""
    text = str(text)
    return repr(text[:limit]) + ('...' if len(text) > limit else '')


def decode_camera_image(source: str, msg, max_pixels: int) -> Tuple[np.ndarray, str]:
    """``source`` 'thermal' or 'visible'; ``msg`` an Image or CompressedImage -> (image, enc)."""
    allowed = THERMAL_ENCODINGS if source == 'thermal' else VISIBLE_ENCODINGS
    what = 'thermal' if source == 'thermal' else 'RGB'
    if not hasattr(msg, 'format'):  # a raw Image: check the cheap fields first
        encoding = str(msg.encoding)
        if encoding not in allowed:
            raise Rejected('encoding', f'{what} image has encoding {short(encoding)} '
                                       f"(expected one of {', '.join(allowed)})")
        height, width = int(msg.height), int(msg.width)
        if height <= 0 or width <= 0 or height * width > max_pixels:
            raise Rejected('size', f'{what} image is {width}x{height} (empty, or more than '
                                   f'limits.max_input_pixels={max_pixels})')
    try:
        image, encoding = messages.image_from_msg(msg, max_pixels)
    except SizeRefused as err:  # a compressed image's header: refused before decoding
        raise Rejected('size', f'{what} image: {err}') from None
    except InputError as err:
        raise Rejected('decode', f'{what} image: {err}') from None
    if encoding not in allowed:
        raise Rejected('encoding', f'{what} image decodes to {short(encoding)} '
                                   f"(expected one of {', '.join(allowed)})")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise Rejected('size', f'{what} image is {image.shape[1]}x{image.shape[0]}, more '
                               f'than limits.max_input_pixels={max_pixels}')
    return image, encoding


def all_rejected(label: str, read: int, rejected: Mapping[str, int],
                 example: Optional[str] = None) -> Optional[str]:
    """
    Name why no pair formed when every frame of one camera was rejected (one line).

    ``label`` 'thermal' or 'RGB'; ``rejected`` counts by reason. None unless all ``read``
    frames were rejected (then pairing, ``sync.slop``, was never the cause).
    """
    counts = {reason: n for reason, n in rejected.items() if n}
    if read <= 0 or sum(counts.values()) < read:
        return None
    reasons = ', '.join(f'{reason}: {n}' for reason, n in counts.items())
    first = f'; first: {example}' if example else ''
    return f'all {read} {label} frames were rejected ({reasons}){first}'
