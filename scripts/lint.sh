#!/usr/bin/env bash
# The three ament linters of `colcon test` (test_flake8, test_pep257, test_copyright), run without
# ROS 2: flake8 with ament's settings and plugins, pydocstyle with ament_pep257's defaults, and a
# copyright / Apache-2.0 header check. Exits non-zero on any violation.
#
# The tools go into their own virtual environment ($SGDFUSE_LINT_VENV, default
# /tmp/sgdfuse_lint_venv), created on first use from the pinned versions below (needs PyPI once).
#
#   bash scripts/lint.sh                 # all three
#   bash scripts/lint.sh flake8          # one (flake8, pep257 or copyright): what the pytest
#                                        # linter tests run where ament's linters are not usable
set -euo pipefail

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(flake8 pep257 copyright)
for part in "${PARTS[@]}"; do
  case "$part" in
    flake8|pep257|copyright) ;;
    *) echo "usage: bash scripts/lint.sh [flake8] [pep257] [copyright]" >&2; exit 2 ;;
  esac
done
wants() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SGDFUSE_LINT_VENV:-/tmp/sgdfuse_lint_venv}"
PYTHON="${PYTHON:-python3}"

# flake8 and the plugins a ROS 2 installation provides (python3-flake8-*), and pydocstyle.
PINS=(
  flake8==7.5.0
  flake8-blind-except==0.2.1
  flake8-builtins==3.1.0
  flake8-class-newline==1.6.0
  flake8-comprehensions==3.17.0
  flake8-deprecated==2.4.0
  flake8-docstrings==1.7.0
  flake8-import-order==0.19.2
  flake8-quotes==3.4.0
  pydocstyle==6.3.0
)

# pydocstyle before 6.2 also checks D401 (imperative mood) on @property docstrings; older
# distributions' ament_pep257 (Ubuntu 22.04 / Humble) runs such a version: checked as well.
OLD_VENV="${VENV}_pydocstyle61"
OLD_PINS=(pydocstyle==6.1.1)

make_venv() {  # folder, pins...
  local dir="$1"
  shift
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.pins" 2>/dev/null)" != "$*" ]; then
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    echo "$*" > "$dir/.pins"
  fi
}
make_venv "$VENV" "${PINS[@]}"

cd "$ROOT"
# What ament checks from the package directory: every .py file below it, except in folders whose
# name starts with '.' or '_' (and those marked AMENT_IGNORE). build/, install/, log/ and outputs/
# are local artefacts, not sources.
mapfile -t FILES < <(find . \( -name '.?*' -o -name '_*' -o -name build -o -name install \
                               -o -name log -o -name outputs \) -type d -prune \
                            -o -name '*.py' -type f -print | LC_ALL=C sort)
for ignored in $(find . -name AMENT_IGNORE -printf '%h\n'); do
  mapfile -t FILES < <(printf '%s\n' "${FILES[@]}" | grep -v "^${ignored}/")
done

status=0

if wants flake8; then
  echo "== flake8 (ament_flake8 settings: test/ament_flake8.ini, one process), ${#FILES[@]} files"
  "$VENV/bin/flake8" --config test/ament_flake8.ini "${FILES[@]}" || status=1
fi

# ament_pep257's default: every pydocstyle check except these
# (ament/ament_lint: ament_pep257/ament_pep257/main.py, _ament_ignore).
if wants pep257; then
  make_venv "$OLD_VENV" "${OLD_PINS[@]}"
  for tool in "$VENV/bin/pydocstyle" "$OLD_VENV/bin/pydocstyle"; do
    echo "== pydocstyle $("$tool" --version) (ament_pep257 defaults)"
    "$tool" --ignore=D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404 \
      --match='.*\.py' "${FILES[@]}" || status=1
  done
fi

if wants copyright; then
echo "== copyright and license headers"
"$VENV/bin/python" - "${FILES[@]}" <<'PY' || status=1
"""Every non-empty source file names a copyright holder and carries the Apache-2.0 notice.

Like ament_copyright: the notice is looked for in the file's comment lines, whitespace-insensitive.
"""
import re
import sys

COPYRIGHT = re.compile(r'^#\s*copyright(?:\s+\(c\))?\s+\d{4}(?:-\d{4})?(?:,\s*\d{4}(?:-\d{4})?)*'
                       r',?\s+\S', re.IGNORECASE)
NOTICE = ' '.join("""
Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at
http://www.apache.org/licenses/LICENSE-2.0
Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
""".split())

bad = 0
for path in sys.argv[1:]:
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if not text.strip():
        continue
    comments = [line.strip() for line in text.splitlines() if line.lstrip().startswith('#')]
    if not any(COPYRIGHT.match(line) for line in comments):
        print(f'{path}: no copyright line')
        bad += 1
    elif NOTICE not in ' '.join(' '.join(c.lstrip('#') for c in comments).split()):
        print(f'{path}: no Apache-2.0 notice')
        bad += 1
print(f'{len(sys.argv) - 1} files checked, {bad} without a header')
sys.exit(1 if bad else 0)
PY
fi

exit $status
