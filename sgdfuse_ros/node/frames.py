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
What travels from the node's input callbacks to its worker thread.

A checked input image (:class:`Frame`), a synchronised pair of them (:class:`Pair`) and the
one-slot mailbox (:class:`LatestSlot`) the worker takes the newest pair from: a pair replaced
before the worker takes it is dropped, so latency never grows with load.
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
from typing import Any, Optional

import numpy as np

INPUTS = ('thermal', 'visible')  # the node's two cameras, as the code names them
# ... and as statistics, diagnostics and replay reports name them: after their topics
# (thermal/image_raw, rgb/image_raw), which are what ROS users set and read
INPUT_LABELS = {'thermal': 'thermal', 'visible': 'rgb'}


@dataclass
class Frame:
    """One decoded input image, checked and ready to fuse."""

    source: str            # 'thermal' or 'visible'
    stamp: Any             # builtin_interfaces/Time of the message header
    stamp_s: float
    frame_id: str
    image: np.ndarray
    encoding: str
    arrival: float         # monotonic time the message arrived


@dataclass
class Pair:
    """A thermal and a visible frame the synchroniser matched."""

    thermal: Frame
    visible: Frame
    matched_at: float
    settled: bool = False  # counted as published, dropped or rejected


class LatestSlot:
    """A one-slot mailbox: ``put`` replaces what is waiting and returns it."""

    def __init__(self):
        self._item = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item):
        with self._cond:
            replaced, self._item = self._item, item
            self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None):
        """Return the waiting item (None after ``timeout`` or once closed)."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self):
        with self._cond:
            item, self._item = self._item, None
            return item

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self):
        with self._cond:
            self._closed = False

    def __bool__(self):
        return self._item is not None
