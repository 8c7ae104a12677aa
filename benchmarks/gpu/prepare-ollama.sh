#!/bin/bash
# Prepares, on the development machine, what the GPU benchmark needs to run Ollama with CUDA on
# the offline H200 (README "(d) Ollama with CUDA"), then prints which call carries it.
#   bash benchmarks/gpu/prepare-ollama.sh     (idempotent: finished pieces are kept)
# Produces, inside the checkout and ignored through the repository's info/exclude:
#   .gpu/ollama/ollama.xz            the Go binary (`make engines`' CPU build of OLLAMA_VERSION;
#                                    ggml's base and CPU backend are compiled into it by cgo)
#   .gpu/ollama/ollama-src.tar.xz    the part of the same module source that CMake needs to
#                                    build ggml's CUDA backend (the files Ollama's own
#                                    Dockerfile copies into its CUDA build stages), less the
#                                    Metal and Vulkan backends and the Go files
#   .gpu/ollama/ollama-build.sh      the build script (run from /tmp on the device)
#   .gpu/ollama/SHA256SUMS, VERSION  checked on the device before anything is unpacked
# The device has nvcc 13, CMake and ninja but no Go: the binary travels, the CUDA library is
# built there (phase ollama-build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}        # the project's environment (tests.engines builds the binary)
G=.gpu
D=$G/ollama
LIMIT=$((64 * 1024 * 1024))

VERSION=$(PYTHONPATH=$ROOT $PYTHON -c "from tests.engines.builds import OLLAMA_VERSION as v; print(v)")
EXCLUDE=$(git rev-parse --git-common-dir)/info/exclude   # a worktree has no .git directory
grep -qxF '/.gpu/' "$EXCLUDE" 2>/dev/null || echo '/.gpu/' >> "$EXCLUDE"
mkdir -p $D
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# 1. The Go binary: the cached CPU build of tests/engines/builds.py (built here when missing,
#    which needs Go). The CUDA backend it loads at run time is built on the device.
BIN=$(PYTHONPATH=$ROOT $PYTHON -c "from tests.engines.builds import ensure_ollama as e; print(e() or '')")
[ -x "$BIN" ] || { echo "no Ollama binary (is Go installed? see tests/engines/builds.py)"; exit 1; }
BIN_SHA=$(sha256sum "$BIN" | cut -d' ' -f1)
if [ "$(cat $D/ollama.sha256 2>/dev/null)" != "$BIN_SHA" ]; then
  xz -9e -T2 -c "$BIN" > $D/ollama.xz.partial && mv $D/ollama.xz.partial $D/ollama.xz
  echo "$BIN_SHA" > $D/ollama.sha256
fi

# 2. The module source, trimmed to the CMake build of ggml (Ollama's Dockerfile copies
#    CMakeLists.txt, CMakePresets.json and ml/backend/ggml/ggml into each GPU build stage).
#    Metal and Vulkan are never configured on Linux without a Vulkan SDK (the device build also
#    disables find_package(Vulkan)); Go files are for cgo only.
MOD=$( (go env GOMODCACHE 2>/dev/null || echo "$HOME/go/pkg/mod") | tail -1)/github.com/ollama/ollama@$VERSION
[ -f "$MOD/CMakeLists.txt" ] || { echo "missing $MOD (run 'make engines' first)"; exit 1; }
SRC_STAMP="$VERSION $(cd "$MOD" && find CMakeLists.txt CMakePresets.json ml/backend/ggml/ggml -type f \
  | sort | xargs sha256sum | sha256sum | cut -c1-16)"
if [ ! -f $D/ollama-src.tar.xz ] || [ "$(cat $D/ollama-src.stamp 2>/dev/null)" != "$SRC_STAMP" ]; then
  mkdir -p "$TMP/ollama-src"
  (cd "$MOD" && tar -cf - --exclude='*.go' --exclude=ggml-metal --exclude=ggml-vulkan \
      CMakeLists.txt CMakePresets.json LICENSE ml/backend/ggml/ggml) | tar -xf - -C "$TMP/ollama-src"
  chmod -R u+w "$TMP/ollama-src"   # the module cache is read-only
  tar -C "$TMP" --sort=name --owner=0 --group=0 --mtime=@0 -cf - ollama-src | xz -9e -T2 \
    > $D/ollama-src.tar.xz.partial
  mv $D/ollama-src.tar.xz.partial $D/ollama-src.tar.xz
  echo "$SRC_STAMP" > $D/ollama-src.stamp
fi

# 3. The build script travels beside the archives: the tree is replaced at every call, and the
#    build outlives the call that starts it.
cp benchmarks/gpu/ollama-build.sh $D/ollama-build.sh
echo "$VERSION" > $D/VERSION
(cd $D && sha256sum ollama.xz ollama-src.tar.xz ollama-build.sh VERSION > SHA256SUMS)

# 4. Sizes and where the part rides: with .gpu/model/a (plan (c) call 3), which starts the build.
# shellcheck source=benchmarks/gpu/carry.sh
source "$ROOT/benchmarks/gpu/carry.sh"
echo
echo "ollama $VERSION: binary $(mib "$(stat -c %s "$BIN")") -> ollama.xz $(mib "$(bytes $D/ollama.xz)");" \
  "source $(mib "$(bytes $D/ollama-src.tar.xz)"); .gpu/ollama $(mib "$(bytes $D)"); tree $(mib "$TREE")"
echo "carry plan (README (d)):"
if [ -d $G/model/a ]; then
  plan 3 $G/model/a $D || echo "  -> the tree grew: call 3 carries .gpu/model/a only, call 3b [\".gpu/ollama\"] (README (d))"
else
  echo "  .gpu/model/a missing: run prepare.sh first"
fi
plan "(alone)" $D
