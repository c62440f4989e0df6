#!/usr/bin/env bash
# README command 1: installs dependencies, builds, runs the Update–Dispatch demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
"${FLASHOMNI_BUILD_DIR:-build}/flashomni_demo" "$@"
