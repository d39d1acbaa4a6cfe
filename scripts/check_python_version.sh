#!/usr/bin/env bash
# The oldest Python the code must run on: 3.10 (Ubuntu 22.04, ROS 2 Humble; Jazzy has 3.12).
# vermin reads every .py file and reports the minimum version its syntax, standard-library
# modules and functions need; this fails if anything needs more than $SGDFUSE_MIN_PYTHON.
#
# vermin goes into its own virtual environment ($SGDFUSE_VERMIN_VENV, default
# /tmp/sgdfuse_vermin_venv), created on first use from the pinned version below.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SGDFUSE_VERMIN_VENV:-/tmp/sgdfuse_vermin_venv}"
PYTHON="${PYTHON:-python3}"
TARGET="${SGDFUSE_MIN_PYTHON:-3.10}"
PIN=vermin==1.9.2

if [ ! -x "$VENV/bin/vermin" ] || [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PIN" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN"
  echo "$PIN" > "$VENV/.pins"
fi

cd "$ROOT"
echo "== minimum Python version (vermin, target: at most $TARGET)"
# --eval-annotations: count annotations as evaluated (stricter than `from __future__ import
# annotations` needs); --violations: list only what needs a newer Python than the target.
"$VENV/bin/vermin" -t="$TARGET-" --violations --no-tips --eval-annotations \
  sgdfuse_ros launch test benchmarks setup.py
