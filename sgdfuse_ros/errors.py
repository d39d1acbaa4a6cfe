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
Exceptions that carry a one-line, user-readable message.

Command-line tools print ``str(err)`` on one line and exit non-zero; the node logs it,
counts the frame as rejected and keeps running.
"""

import re


class SgdfuseError(Exception):
    """Base class for every error a user should see as one line."""


class InputError(SgdfuseError):
    """A frame, an image file, a folder or a bag that cannot be used as given."""


class ConfigError(SgdfuseError):
    """A parameter, a config file or a weights file that is missing, out of range or mismatched."""


class ResourceError(SgdfuseError):
    """The machine ran out of something (GPU or host memory) for one frame: it was skipped."""


def first_line(err, limit: int = None, default: str = '') -> str:
    """Return the first line of ``str(err)``, cut to ``limit`` characters; ``default`` if empty."""
    text = str(err).strip()
    if text.startswith('OpenCV('):
        return opencv_reason(text)[:limit]
    return text.splitlines()[0][:limit] if text else default


def opencv_reason(err) -> str:
    """
    Return an OpenCV error as one short line: ``OpenCV <function>: <what went wrong>``.

    OpenCV's own text spans lines and starts with its version and source file
    (``OpenCV(5.0.0) /io/opencv/modules/core/src/arithm.cpp:1611: error: (-209:...) ...``).
    """
    text = ' '.join(str(err).split())
    found = re.search(r"error: \(-?\d+:([^)]*)\)\s*(.*?)(?: in function '?([\w:~<>]+)'?)?$",
                      text)
    if not found:
        return text[:200]
    kind, detail, function = found.groups()
    return f"OpenCV{' ' + function if function else ''}: {detail.strip() or kind}"[:200]


def error_line(err, limit: int = None) -> str:
    """Return ``'<ExceptionType>: <first line of the message>'`` (the type alone if none)."""
    line = first_line(err, limit)
    return f'{type(err).__name__}: {line}' if line else type(err).__name__


def torch_file_problem(err: BaseException, path) -> str:
    """
    Say in a few words why ``torch.load(path, weights_only=True)`` refused a file.

    PyTorch's own messages span lines and paragraphs (the safe-load refusal explains its
    change of default and suggests ``weights_only=False``, which this package never uses);
    this names what is wrong with the file instead, from the error and the file's first bytes.
    """
    try:
        with open(path, 'rb') as handle:
            head = handle.read(8)
    except OSError as os_err:
        return f'cannot be read: {os_err.strerror or type(os_err).__name__}'
    if not head:
        return 'the file is empty (0 bytes)'
    text = ' '.join(str(err).split())
    archive = head.startswith(b'PK\x03\x04')  # torch.save's zip format
    legacy = head.startswith(b'\x80')  # torch.save's older plain pickle
    if 'Weights only load failed' in text:
        found = re.search(r'GLOBAL ([\w.]+)', text)
        if found:
            return (f'it holds a pickled Python object ({found.group(1)}) besides tensors, '
                    f'refused because loading it could run code')
        if archive or legacy:
            return ('it holds pickled content besides tensors, refused because loading it '
                    'could run code')
    if archive:
        return ('a damaged or truncated PyTorch archive (its zip directory or a member is '
                'unreadable): save or download it again')
    if legacy and isinstance(err, EOFError):
        return 'the file ends early (truncated): save or download it again'
    return f'not a PyTorch weights file (it starts with {head!r})'
