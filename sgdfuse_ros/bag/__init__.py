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
ROS 2 bags without ROS: read, write, replay and make bags.

Read recordings, write Humble-playable bags, replay the fusion over a recording (``sgdfuse
replay``) and make test bags from image pairs (``sgdfuse make-bag``).

Modules: :mod:`.reader` (open bags, find camera topics), :mod:`.writer` (write bags),
:mod:`.replay` (the replay behind ``sgdfuse replay``), :mod:`.report` (replay report). The
commands themselves live in :mod:`sgdfuse_ros.cli` (``replay``, ``make_bag``).
"""
