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

"""What the benchmarks say about the machine they ran on (shared by the scripts here)."""

from pathlib import Path


def cpu_model(default: str = 'unknown') -> str:
    """Return the CPU's model name from /proc/cpuinfo (``default`` where it cannot be read)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return default


def describe(packages=('torch', 'onnxruntime', 'opencv')) -> dict:
    """
    Return the facts every benchmark records about the machine it ran on.

    CPU model, logical CPUs, Python, the date, the 1-minute load average at the start and the
    versions of ``packages`` (read from the installed distributions, without importing them:
    None where one is not installed). Scripts add their own fields (threads, GPU, ...).
    """
    import datetime
    from importlib import metadata
    import os
    import platform

    info = {'cpu': cpu_model('unknown'), 'logical_cpus': os.cpu_count(),
            'python': platform.python_version(),
            'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'load_average_1min_at_start': round(os.getloadavg()[0], 2)}
    distributions = {'torch': ('torch',), 'onnxruntime': ('onnxruntime-gpu', 'onnxruntime'),
                     'opencv': ('opencv-python-headless', 'opencv-python')}
    for name in packages:
        info[name] = None
        for dist in distributions.get(name, (name,)):
            try:
                info[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return info
