#!/bin/bash
# Builds one of ggml's dynamically loaded backends from Ollama's trimmed source and installs it
# into the layout the Ollama binary searches (README "(d) Ollama with CUDA"):
#   PREFIX/bin/ollama
#   PREFIX/lib/ollama/libggml-base.so*           what every backend library links against
#   PREFIX/lib/ollama/RUNNER_DIR/libggml-*.so    the backend (cuda_v13/libggml-cuda.so)
#   PREFIX/lib/ollama/RUNNER_DIR/libcu*.so.*     links to the toolkit's cudart and cuBLAS
# Started by phase ollama-build in its own session (it outlives the call) from a copy under
# PREFIX, never from the carried tree. Usage:
#   ollama-build.sh SOURCE_TAR_XZ PREFIX
# Environment: TARGET [ggml-cuda] (ggml-cpu-haswell for the CPU dry run), RUNNER_DIR [cuda_v13],
# CUDA_ARCH [90] (the H200 only), JOBS [nproc], CMAKE_EXTRA [] (more -D options, split on
# blanks: a cuBLAS outside the toolkit, say). Ends by writing PREFIX/build.rc (0: done).
set -uo pipefail
SRC_TAR=$1
PREFIX=$2
TARGET=${TARGET:-ggml-cuda}
RUNNER_DIR=${RUNNER_DIR:-cuda_v13}
CUDA_ARCH=${CUDA_ARCH:-90}
JOBS=${JOBS:-$(nproc)}
T0=$(date +%s)
say() { echo "[ollama-build $(date +%T) +$(( $(date +%s) - T0 ))s] $*"; }
finish() { echo "$1" > "$PREFIX/build.rc"; say "done rc=$1"; exit "$1"; }
rm -f "$PREFIX/build.rc"

# nvcc is not always on PATH in CUDA images; the newest toolkit under /usr/local otherwise.
find_nvcc() {
  command -v nvcc && return 0
  [ -x /usr/local/cuda/bin/nvcc ] && { echo /usr/local/cuda/bin/nvcc; return 0; }
  find /usr/local -maxdepth 3 -path '/usr/local/cuda*/bin/nvcc' 2>/dev/null | sort -V | tail -1
}

configure() {
  local args=(-S "$PREFIX/src/ollama-src" -B "$PREFIX/build" -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_DISABLE_FIND_PACKAGE_Vulkan=ON -DOLLAMA_RUNNER_DIR="$RUNNER_DIR")
  command -v ninja >/dev/null && args+=(-G Ninja)
  if [ "$TARGET" = ggml-cuda ]; then
    local nvcc; nvcc=$(find_nvcc)
    [ -x "$nvcc" ] || { say "FATAL: no nvcc on PATH nor under /usr/local/cuda*"; return 7; }
    say "nvcc $nvcc: $("$nvcc" --version | tail -2 | head -1)"
    # ggml-cuda links cudart and cuBLAS from the toolkit; where else they are, should it lack them.
    say "cuBLAS: $(find "$(dirname "$nvcc")/.." /usr/lib/x86_64-linux-gnu -maxdepth 4 -name 'libcublas.so*' \
      2>/dev/null | head -3 | tr '\n' ' ')"
    # One architecture (sm_90, the H200) instead of the 12 of the "CUDA 13" preset.
    args+=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH")
  fi
  say "cmake $(cmake --version | head -1); gcc $(gcc -dumpfullversion 2>/dev/null)"
  # shellcheck disable=SC2086  # CMAKE_EXTRA is a list of words
  cmake "${args[@]}" ${CMAKE_EXTRA:-}
}

# cudart and cuBLAS travel with Ollama's own CUDA libraries (its install rule copies them from
# the toolkit); links serve the same purpose here without copying ~600 MB.
link_cuda_runtime() {
  local dir=$1 lib
  lib=$(sed -n 's/^CUDAToolkit_LIBRARY_DIR:[A-Z]*=//p' "$PREFIX/build/CMakeCache.txt")
  # CMake 4 does not always cache it; the ldd check below then shows whether the system's
  # library path has cudart and cuBLAS (on the H200 image it had).
  [ -d "$lib" ] || { say "no CUDAToolkit_LIBRARY_DIR in CMakeCache.txt: no links made"; return 0; }
  say "CUDA runtime libraries from $lib"
  for f in "$lib"/libcudart.so.* "$lib"/libcublas.so.* "$lib"/libcublasLt.so.*; do
    [ -e "$f" ] && ln -sfn "$(readlink -f "$f")" "$dir/$(basename "$f")"
  done
}

install_layout() {
  local out=$PREFIX/build/lib/ollama lib=$PREFIX/lib/ollama
  mkdir -p "$lib/$RUNNER_DIR"
  cp -a "$out"/libggml-base.so* "$lib/" || return 8
  cp -a "$out/lib$TARGET.so" "$lib/$RUNNER_DIR/" || return 8
  [ "$TARGET" = ggml-cuda ] && link_cuda_runtime "$lib/$RUNNER_DIR"
  # The same search path the server gives its runners (LD_LIBRARY_PATH: lib/ollama, then the
  # runner directory); the CUDA driver's libcuda.so.1 comes from the system.
  local missing
  missing=$(LD_LIBRARY_PATH="$lib:$lib/$RUNNER_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    ldd "$lib/$RUNNER_DIR/lib$TARGET.so" | grep "not found")
  [ -z "$missing" ] || { say "FATAL: unresolved libraries: $missing"; return 9; }
  find "$PREFIX/lib" -maxdepth 3 -name 'lib*' -printf '%P %s\n' | sort
}

mkdir -p "$PREFIX/src"
if [ ! -f "$PREFIX/src/.unpacked" ]; then
  tar -xJf "$SRC_TAR" -C "$PREFIX/src" || finish 6
  touch "$PREFIX/src/.unpacked"
fi
say "target $TARGET, runner dir $RUNNER_DIR, jobs $JOBS"
configure || finish 7
say "configured"
cmake --build "$PREFIX/build" --target "$TARGET" -j "$JOBS" || finish 8
say "built"
install_layout || finish $?
finish 0
