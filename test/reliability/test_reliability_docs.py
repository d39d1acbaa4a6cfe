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
Check the test references in docs/reliability.md.

docs/reliability.md points only at tests that exist (and, for parametrised ones, at case ids
that the test file defines).
"""

from pathlib import Path
import re

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / 'docs' / 'reliability.md'
REFERENCE = re.compile(r'`(test/[\w/]+\.py)::(\w+)((?:\[[^\]`]+\])?)`((?:, `\[[^\]`]+\]`)*)')


def references():
    out = []
    for line in DOC.read_text().splitlines():
        if not line.startswith('|'):
            continue
        for path, name, first, more in REFERENCE.findall(line):
            ids = [first[1:-1]] if first else []
            ids += re.findall(r'`\[([^\]`]+)\]`', more)
            out.append((path, name, ids))
    return out


def test_every_row_of_the_case_tables_names_a_test():
    text = DOC.read_text()
    section = text.split('## Every case and the test that proves it', 1)[1].split('\n## ', 1)[0]
    lines = section.splitlines()
    rows = [line for i, line in enumerate(lines) if line.startswith('|')
            and not line.startswith('|---')
            and not (i + 1 < len(lines) and lines[i + 1].startswith('|---'))]  # not headers
    cases = rows
    assert len(cases) >= 60
    for row in cases:
        assert '`test/' in row or 'bench_soak.py' in row, row


def test_every_referenced_test_exists():
    refs = references()
    assert len(refs) >= 80
    missing = []
    for path, name, ids in refs:
        source = (ROOT / path).read_text() if (ROOT / path).is_file() else ''
        if not re.search(rf'^def {name}\(', source, re.M):
            missing.append(f'{path}::{name}')
        for case in ids:
            if f"'{case}'" not in source and f'"{case}"' not in source:
                missing.append(f'{path}::{name}[{case}]')
    assert missing == []
