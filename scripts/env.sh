# Sourced by scripts/demo.sh and scripts/test.sh: create .venv and install the pinned
# dependencies + this package (editable), once; later calls reuse it while requirements.txt
# and setup.py are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SGDFUSE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null; then
  echo "error: $PY not found (Python 3.10+ is needed)" >&2; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV" >&2
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "python3-venv missing: installing it with apt-get" >&2
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv "$VENV"
    else
      echo "error: '$PY -m venv' failed; install python3-venv (Debian: sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
STAMP="$VENV/.sgdfuse-installed"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing dependencies (first run: torch alone is a few GB, allow a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT" 2> >(grep -v "^WARNING: Location" >&2)
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
