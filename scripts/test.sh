#!/usr/bin/env bash
# Set up (once) and run the whole test suite. Tests on real data read $SGDFUSE_DATA
# (a RoadScene-layout folder) and skip, saying so, when it is absent.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m pytest test "$@"
