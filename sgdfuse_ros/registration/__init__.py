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
Automatic thermal -> visible registration (``sgdfuse register``) and its live check.

- :mod:`.estimate`: one homography from many frames of one rig (global search, joint refinement,
  confidence from the agreement of the frames);
- :mod:`.simulate`: simulated rigs made from registered pairs (the benchmark and the tests);
- :mod:`.check`: the check image and the cheap alignment score the node reports.
"""
