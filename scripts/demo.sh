#!/usr/bin/env bash
# The main job: set up (once) and run `sgdfuse demo` on the generated sample
# (and on RoadScene's test split when SGDFUSE_DATA or --data points at it).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec sgdfuse demo "$@"
