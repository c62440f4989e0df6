#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian machine (idempotent).
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)  # the pip package below provides >= 3.28
command -v ninja >/dev/null || need_apt+=(ninja-build)
[ -f /usr/include/gtest/gtest.h ] || need_apt+=(libgtest-dev)
command -v g++ >/dev/null || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi
# Python side: NumPy + pytest for the Python layer's tests; nvidia-cutlass ships the CuTe/CUTLASS
# C++ headers the Hopper kernels are written with (pinned: the kernels are tested against it).
python3 -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/../requirements-dev.txt"
