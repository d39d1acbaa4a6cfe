"""docs/reliability.md points only at tests that exist (and, for parametrised ones, at case ids
that the test file defines)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
REFERENCE = re.compile(r"`(test/[\w/]+\.py)::(\w+)((?:\[[^\]`]+\])?)`((?:, `\[[^\]`]+\]`)*)")


def references():
    out = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            continue
        for path, name, first, more in REFERENCE.findall(line):
            ids = [first[1:-1]] if first else []
            ids += re.findall(r"`\[([^\]`]+)\]`", more)
            out.append((path, name, ids))
    return out


def test_every_row_of_the_case_tables_names_a_test():
    text = DOC.read_text()
    section = text.split("## Every case and the test that proves it", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    rows = [line for i, line in enumerate(lines) if line.startswith("|")
            and not line.startswith("|---")
            and not (i + 1 < len(lines) and lines[i + 1].startswith("|---"))]  # not headers
    cases = rows
    assert len(cases) >= 60
    for row in cases:
        assert "`test/" in row or "bench_soak.py" in row, row


def test_every_referenced_test_exists():
    refs = references()
    assert len(refs) >= 80
    missing = []
    for path, name, ids in refs:
        source = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
        if not re.search(rf"^def {name}\(", source, re.M):
            missing.append(f"{path}::{name}")
        for case in ids:
            if f'"{case}"' not in source:
                missing.append(f"{path}::{name}[{case}]")
    assert missing == []
