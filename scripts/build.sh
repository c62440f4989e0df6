#!/usr/bin/env bash
# Configures and builds FlashOmni into ${FLASHOMNI_BUILD_DIR:-build} (CUDA on when nvcc is found).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FLASHOMNI_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "${FLASHOMNI_JOBS:-$(nproc)}"
