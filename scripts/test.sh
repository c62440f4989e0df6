#!/usr/bin/env bash
# README command 2: builds, then runs the C++ suite (CTest/GoogleTest) and the Python suite (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
source scripts/env.sh
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
if compgen -G "tests/python/test_*.py" >/dev/null; then
  FLASHOMNI_LIBRARY="$PWD/$BUILD_DIR/libflashomni.so" PYTHONPATH="$PWD/python" \
    python3 -m pytest -q tests/python
fi
