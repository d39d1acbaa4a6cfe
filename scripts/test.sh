#!/usr/bin/env bash
# Set up (once) and run the whole test suite. Tests on real data read $SGDFUSE_DATA
# (a RoadScene-layout folder; else ../shared/data/roadscene beside the checkout) and skip,
# saying so, when it is absent.
#
# This is the developer's route (the project's virtual environment, pinned pytest). Where ROS 2
# is sourced and its pytest plugins cannot load into this pytest, scripts/ros_pytest_args.py
# turns them off (and says so); the launch tests then skip here: ROS users run the suite with
# `colcon test` (README, "For ROS 2 users"), which runs them.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
mapfile -t ROS_ARGS < <(python scripts/ros_pytest_args.py)
exec python -m pytest "${ROS_ARGS[@]}" test "$@"
