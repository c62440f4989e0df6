# Sourced by the scripts: picks a CMake >= 3.28 (Debian 12 ships 3.25, which knows neither CUDA 20
# nor the 90a architecture; scripts/install_deps.sh installs a newer one from PyPI).
fo_cmake_ok() { "$1" --version 2>/dev/null | awk 'NR==1{split($3,v,".");ok=(v[1]>3||(v[1]==3&&v[2]>=28))} END{exit !ok}'; }
if [ -z "${FO_CMAKE_BIN:-}" ]; then
  if fo_cmake_ok cmake; then
    FO_CMAKE_BIN=$(dirname "$(command -v cmake)")
  else
    FO_CMAKE_BIN=$(python3 -c 'import cmake; print(cmake.CMAKE_BIN_DIR)' 2>/dev/null || true)
    fo_cmake_ok "$FO_CMAKE_BIN/cmake" || { echo "CMake >= 3.28 not found: run scripts/install_deps.sh" >&2; exit 1; }
  fi
fi
export PATH="$FO_CMAKE_BIN:$PATH"
BUILD_DIR=${BUILD_DIR:-${FLASHOMNI_BUILD_DIR:-build}}  # a calling script may have chosen its own

# GPU-machine build used by scripts/gpu_*.sh: libflashomni plus the named extra targets, CUDA on,
# CuTe/CUTLASS headers from the carried .carry/cutlass/include (that machine has no network),
# GoogleTest off (that machine has none). Logs to $1; on failure prints the log's tail and exits.
fo_gpu_build() {
  local log=$1
  shift
  local cutlass=${FLASHOMNI_CUTLASS_INCLUDE:-$PWD/.carry/cutlass/include}
  { cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHOMNI_BUILD_TESTS=OFF \
      -DFLASHOMNI_WITH_CUDA=ON -DFLASHOMNI_CUTLASS_INCLUDE="$cutlass" &&
    cmake --build "$BUILD_DIR" -j "${FLASHOMNI_JOBS:-16}" --target flashomni "$@"; } > "$log" 2>&1 ||
    { tail -40 "$log"; echo "build failed (log: $log)" >&2; exit 1; }
  tail -1 "$log"
}
