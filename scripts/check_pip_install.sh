#!/usr/bin/env bash
# `pip install .` into a clean virtual environment, as a user without ROS installs the package
# (README, "Install"), then the tool it installs:
#   1. the base install (OpenCV left out, as a ROS system needs it): `sgdfuse --help` stops with
#      one line that says how to install OpenCV, exit status 1;
#   2. with the README's extras, `pip install '.[opencv,onnxruntime]'`: `sgdfuse --help`, and one
#      tiny real command, `sgdfuse demo --pairs 1` (evaluate + make-bag + replay of a generated
#      pair), run outside the checkout so that the installed package and its share/ files are
#      the ones used.
# Versions: requirements.txt's pins as constraints (so pip's cache serves the same files every
# run), except torch where a CPU-only torch wheel lies in a folder of $PIP_FIND_LINKS (a
# machine's local wheels): that one is used, about 0.2 GB instead of the 5 GB of the CUDA build
# and its libraries, and it checks the range setup.py declares with another torch than the pin.
# The tracked files are copied first: the build writes nothing into the checkout. Prints the
# seconds each part took.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
WORK="$(mktemp -d /tmp/sgdfuse_pip_install.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
t0=$SECONDS
fail() { echo "error: $*" >&2; exit 1; }

mkdir "$WORK/src"
(cd "$ROOT" && git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$WORK/src")
"$PY" -m venv "$WORK/venv"
TAG="cp$("$WORK/venv/bin/python" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
CPU_TORCH=""
for dir in ${PIP_FIND_LINKS:-}; do
  for wheel in "$dir"/torch-*+cpu-"$TAG"-"$TAG"-*linux*_x86_64.whl; do
    [ -f "$wheel" ] && CPU_TORCH="$(basename "$wheel" | cut -d- -f2)"
  done
done
if [ -n "$CPU_TORCH" ]; then
  grep -v '^torch==' "$ROOT/requirements.txt" > "$WORK/constraints.txt"
  echo "torch==$CPU_TORCH" >> "$WORK/constraints.txt"
  echo "-- torch $CPU_TORCH (CPU-only wheel found in \$PIP_FIND_LINKS)"
else
  cp "$ROOT/requirements.txt" "$WORK/constraints.txt"
fi
PIP=("$WORK/venv/bin/python" -m pip install -q -c "$WORK/constraints.txt")
SGDFUSE="$WORK/venv/bin/sgdfuse"
cd "$WORK"

echo "-- pip install . (clean venv)"
"${PIP[@]}" "$WORK/src"
t_base=$((SECONDS - t0))
rc=0
"$SGDFUSE" --help >"$WORK/out" 2>"$WORK/err" || rc=$?
cat "$WORK/err"
[ "$rc" = 1 ] || fail "sgdfuse --help without OpenCV: exit $rc, expected 1"
[ "$(wc -l <"$WORK/err")" = 1 ] && [ ! -s "$WORK/out" ] || fail "expected one line on stderr"
grep -q "opencv-python-headless" "$WORK/err" || fail "the line does not say how to install OpenCV"

echo "-- pip install '.[opencv,onnxruntime]'"
t1=$SECONDS
"${PIP[@]}" "$WORK/src[opencv,onnxruntime]"
t_extras=$((SECONDS - t1))
"$SGDFUSE" --help | head -3
"$WORK/venv/bin/python" - "$WORK/venv" <<'PY'
import os
import sys

import sgdfuse_ros
from sgdfuse_ros.config import share_dir

venv = os.path.realpath(sys.argv[1])
for what, path in (('package', sgdfuse_ros.__file__), ('share dir', share_dir())):
    path = os.path.realpath(path)
    assert path.startswith(venv + os.sep), f'{what} comes from {path}, not the clean venv'
print(f'installed package and share/ files come from {venv}')
PY
t2=$SECONDS
"$SGDFUSE" demo --pairs 1 --out "$WORK/demo" --quiet
for f in evaluate_sample/report.md evaluate_sample/contact_sheet.png sample_bag_fused_report/report.md; do
  [ -s "$WORK/demo/$f" ] || fail "sgdfuse demo did not write $f"
done
t_demo=$((SECONDS - t2))
echo "pip install ok: base install ${t_base} s, extras ${t_extras} s, demo ${t_demo} s, total $((SECONDS - t0)) s"
