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
Runtime parameter changes: which are allowed when, and which rebuild the pipeline.

The node checks a whole change set first (all or none, :func:`checked_changes`) and only then
applies it: node parameters at once, pipeline parameters by rebuilding the pipeline before the
next frame (:func:`rebuilds_pipeline`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

from ..config import check_config
from ..errors import ConfigError
from ..parameters import NODE_PARAMS, SPECS

# parameters that only the node reads: changing them never rebuilds the pipeline
NODE_ONLY = frozenset(p.name for p in NODE_PARAMS) | {'output.encoding'}


def checked_changes(config: Mapping[str, Any], changes: Mapping[str, Any],
                    state: str) -> Tuple[dict, Dict[str, Any]]:
    """
    Return (the new configuration, the values that changed); ConfigError says why not.

    Read-only parameters change only while unconfigured (they take effect on configure).
    """
    for name in changes:
        spec = SPECS.get(name)
        if spec is None:
            raise ConfigError(f"unknown parameter '{name}'")
        if spec.read_only and state not in ('unconfigured',):
            raise ConfigError(f'parameter {name} is read-only while the node is '
                              f'{state} (set it in the parameter file, or while '
                              'unconfigured)')
    candidate = dict(config)
    candidate.update({name: SPECS[name].validate(v) for name, v in changes.items()})
    candidate = check_config(candidate)
    return candidate, {k: v for k, v in candidate.items() if config.get(k) != v}


def rebuilds_pipeline(changed: Mapping[str, Any]) -> bool:
    """Whether a change set touches a parameter the pipeline reads."""
    return any(name not in NODE_ONLY for name in changed)
