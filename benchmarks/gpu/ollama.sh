# shellcheck shell=bash
# Ollama with CUDA beside vLLM on the same GPU, same prompts (README "(d) Ollama with CUDA").
# Sourced by run-on-device.sh (uses its say, py, fits, secs_left, mark, B, RES, LOG, W, HERE).
# Phases:
#   ollama-build       checks and unpacks .gpu/ollama to $OLLAMA_PREFIX (the binary, the trimmed
#                      source, the build script), then builds ggml's CUDA backend for sm_90 in
#                      its own session (it outlives the call; log $LOG/ollama-build.log)
#   ollama-build-wait  waits for that build (or the call's budget), prints the log's tail
#   ollama-start       ollama serve in its own session, OLLAMA_NUM_PARALLEL slots, port
#                      $OLLAMA_PORT; restarts a server running with another slot count;
#                      ollama-start-pN: the same with N slots
#   ollama-stop        stops it;  ollama-create: the model smollm2 from $OLLAMA_GGUF (ChatML)
#   ollama-check       one request, then /api/ps (size_vram must equal size) and the server
#                      log (the GPU's name, every layer offloaded); stops the call otherwise
#   e2e-ollama-adaptive   the production path through Ollama: native requests, the schema,
#                      the worker's defaults (adaptive window), $N_OLLAMA requests
#   e2e-ollama-fixedN  the same with a fixed window of N ($N_OLLAMA_FIXED8 for N = 8: the
#                      prototype's pattern with OLLAMA_NUM_PARALLEL=8)
#   ollama-probe       decode tokens/s with no format, "json" and a schema, 1 and 4 requests at
#                      once, $OLLAMA_PROBE_TOKENS tokens each (ollama_probe.py; where the time
#                      goes: Ollama's eval_duration against the clock)
# Results are named after the server's slot count: e2e-ollama-adaptive-p32.json,
# e2e-ollama-fixed8-p8.json (never a vLLM run's name).
OLLAMA_PREFIX=${OLLAMA_PREFIX:-/tmp/ollama}          # outside every carried folder
OLLAMA_KIT=${OLLAMA_KIT:-.gpu/ollama}                # carried once (plan (d) call 3)
OLLAMA_PORT=${OLLAMA_PORT:-11434}
OLLAMA_URL=http://127.0.0.1:$OLLAMA_PORT
OLLAMA_NUM_PARALLEL=${OLLAMA_NUM_PARALLEL:-8}        # slots of ollama-start
OLLAMA_CONTEXT=${OLLAMA_CONTEXT:-8192}               # per slot: SmolLM2's context, as vLLM's
OLLAMA_GGUF=${OLLAMA_GGUF:-/tmp/gg/smollm2.gguf}     # joined by phase model (or here)
OLLAMA_MODEL=${OLLAMA_MODEL:-smollm2}
OLLAMA_BUILD_TARGET=${OLLAMA_BUILD_TARGET:-ggml-cuda}   # dry run: ggml-cpu-haswell
OLLAMA_RUNNER_DIR=${OLLAMA_RUNNER_DIR:-cuda_v13}        # dry run: cpu_dl
OLLAMA_BUILD_JOBS=${OLLAMA_BUILD_JOBS:-$(nproc)}
OLLAMA_NUM_THREAD=${OLLAMA_NUM_THREAD:-}            # empty: Ollama's choice; 1 for CPU dry runs
OLLAMA_RATE_HINT=${OLLAMA_RATE_HINT:-0.5}            # requests/s (run 6: 0.36-0.57), sizes the result timeouts
N_OLLAMA=${N_OLLAMA:-500}                            # e2e-ollama-adaptive, -fixedN
N_OLLAMA_FIXED8=${N_OLLAMA_FIXED8:-300}              # e2e-ollama-fixed8
OLLAMA_PROBE_TOKENS=${OLLAMA_PROBE_TOKENS:-300}      # ollama-probe: num_predict
COST+=([ollama-build]=20 [ollama-build-wait]=20 [ollama-start]=40 [ollama-stop]=15
  [ollama-create]=40 [ollama-check]=40 [e2e-ollama-adaptive]=100 [ollama-probe]=90)

ollama_up() { curl -sf -o /dev/null "$OLLAMA_URL/api/version"; }
ollama_slots() { cat "$OLLAMA_PREFIX/serve.parallel" 2>/dev/null || echo 0; }
ollama_log() { echo "$LOG/ollama-serve-p$(ollama_slots).log"; }

# The pattern phases (ollama-start-pN, e2e-ollama-fixedN): sets run and cost for the main loop.
# shellcheck disable=SC2034  # run and cost are the main loop's
ollama_dispatch() {  # PHASE
  if [[ $1 =~ ^ollama-start-p([0-9]+)$ ]]; then
    run=(ollama_start "${BASH_REMATCH[1]}"); cost=40
  elif [[ $1 =~ ^e2e-ollama-fixed([0-9]+)$ ]]; then
    run=(e2e_ollama_fixed "${BASH_REMATCH[1]}"); cost=90
  else
    return 1
  fi
}

phase_ollama_build() {
  local p=$OLLAMA_PREFIX
  if [ "$(cat "$p/build.rc" 2>/dev/null)" = 0 ]; then say "ollama: already built in $p"; return 0; fi
  if kill -0 "$(cat "$p/build.pid" 2>/dev/null)" 2>/dev/null; then say "ollama: build running"; return 0; fi
  # Unpacked once: a build that failed can be started again in a later call without the kit.
  if [ ! -x "$p/bin/ollama" ] || [ ! -f "$p/ollama-build.sh" ]; then
    (cd "$OLLAMA_KIT" && sha256sum -c --quiet SHA256SUMS) || { say "FATAL: $OLLAMA_KIT missing or damaged"; return 3; }
    mkdir -p "$p/bin" && cp "$OLLAMA_KIT"/{ollama-src.tar.xz,ollama-build.sh,VERSION} "$p/" || return 3
    xz -dc "$OLLAMA_KIT/ollama.xz" > "$p/bin/ollama.partial" && chmod +x "$p/bin/ollama.partial" \
      && mv "$p/bin/ollama.partial" "$p/bin/ollama" || return 3
  fi
  # A binary the system's C library cannot run fails here, not in the middle of a later call.
  "$p/bin/ollama" --help > /dev/null || { say "FATAL: the ollama binary does not run here"; ldd --version | head -1; return 3; }
  say "ollama $(cat "$p/VERSION"): building $OLLAMA_BUILD_TARGET with $OLLAMA_BUILD_JOBS jobs"
  rm -f "$p/build.rc" "$p/build.pid"
  # One simple command sent to the background: nothing of this call keeps its output open.
  TARGET=$OLLAMA_BUILD_TARGET RUNNER_DIR=$OLLAMA_RUNNER_DIR JOBS=$OLLAMA_BUILD_JOBS \
    CMAKE_EXTRA=${OLLAMA_CMAKE_EXTRA:-} setsid bash -c \
    "cd $p && echo \$\$ > $p/build.pid && exec nice -n 10 bash $p/ollama-build.sh $p/ollama-src.tar.xz $p" \
    > "$LOG/ollama-build.log" 2>&1 < /dev/null &
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ -f "$p/build.pid" ] && return 0; sleep 0.5; done
  say "ollama: the build did not start"; return 3
}

# Waits for the build; leaves OLLAMA_WAIT_LEAVE seconds of the call for what follows.
phase_ollama_build_wait() {
  local p=$OLLAMA_PREFIX rc leave=${OLLAMA_WAIT_LEAVE:-15} next=0
  until [ -f "$p/build.rc" ]; do
    kill -0 "$(cat "$p/build.pid" 2>/dev/null)" 2>/dev/null || { say "ollama: no build running (run ollama-build)"; return 10; }
    [ "$(secs_left)" -gt "$leave" ] || { say "ollama: build still running: $(grep -a '^\[' "$LOG/ollama-build.log" | tail -1)"; return 10; }
    if [ "$(date +%s)" -ge "$next" ] && grep -qa '^\[' "$LOG/ollama-build.log"; then
      say "ollama: $(grep -a '^\[' "$LOG/ollama-build.log" | tail -1 | cut -c1-120)"; next=$(( $(date +%s) + 30 ))
    fi
    sleep 3
  done
  rc=$(cat "$p/build.rc")
  grep -av "warning\|note:\|^ " "$LOG/ollama-build.log" | tail -n 12
  return "$rc"
}

# N slots, each with OLLAMA_CONTEXT tokens; models and home under the prefix, started from
# there (not from the carried tree).
ollama_start() {  # SLOTS
  local p=$OLLAMA_PREFIX n=$1 log=$LOG/ollama-serve-p$1.log until
  [ "$(cat "$p/build.rc" 2>/dev/null)" = 0 ] || { say "ollama: not built (ollama-build, ollama-build-wait)"; return 4; }
  if ollama_up; then
    [ "$(ollama_slots)" = "$n" ] && { say "ollama already up with $n slots"; return 0; }
    phase_ollama_stop
  fi
  curl -sf -o /dev/null "$ENGINE/health" && say "WARNING: vllm serve is up and holds most of the GPU's memory"
  mkdir -p "$p/home" "$p/models" && echo "$n" > "$p/serve.parallel" && rm -f "$p/serve.pid"
  env HOME="$p/home" OLLAMA_MODELS="$p/models" OLLAMA_HOST="127.0.0.1:$OLLAMA_PORT" \
    OLLAMA_NUM_PARALLEL="$n" OLLAMA_CONTEXT_LENGTH="$OLLAMA_CONTEXT" OLLAMA_KEEP_ALIVE=30m \
    setsid bash -c "cd $p && echo \$\$ > $p/serve.pid && exec $p/bin/ollama serve" > "$log" 2>&1 < /dev/null &
  until=$(( $(date +%s) + 60 ))
  until ollama_up; do
    [ "$(date +%s)" -lt "$until" ] || { say "ollama serve did not answer in 60 s"; tail -20 "$log"; return 4; }
    if [ -f "$p/serve.pid" ] && ! kill -0 "$(cat "$p/serve.pid")" 2>/dev/null; then
      say "ollama serve died"; tail -20 "$log"; return 4
    fi
    sleep 1
  done
  say "ollama serve up: $n slots of $OLLAMA_CONTEXT tokens; $(grep -ac 'inference compute' "$log") device line(s)"
  grep -a "inference compute" "$log" | sed 's/^.*msg=/  /' | cut -c1-240
}
phase_ollama_start() { ollama_start "$OLLAMA_NUM_PARALLEL"; }

phase_ollama_stop() {
  local pid until=$(( $(date +%s) + 30 ))
  pid=$(cat "$OLLAMA_PREFIX/serve.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
  while ollama_up || kill -0 "$pid" 2>/dev/null; do
    [ "$(date +%s)" -lt "$until" ] || { kill -9 "$pid" 2>/dev/null; break; }
    sleep 1
  done
  rm -f "$OLLAMA_PREFIX/serve.pid" "$OLLAMA_PREFIX/serve.parallel"
  say "ollama serve stopped"
}

# SmolLM2's chat template (ChatML, as the GGUF's and the vLLM run's) and its end-of-turn token;
# created again each time (the blob is kept: a second create takes a second).
phase_ollama_create() {
  local p=$OLLAMA_PREFIX
  ollama_up || { say "ollama is not up"; return 4; }
  if [ ! -f "$OLLAMA_GGUF" ] && [ -f /tmp/gg/smollm2.gguf.part1 ]; then
    cat /tmp/gg/smollm2.gguf.part0 /tmp/gg/smollm2.gguf.part1 > "$OLLAMA_GGUF" || return 3
  fi
  [ -f "$OLLAMA_GGUF" ] || { say "no $OLLAMA_GGUF (phase model joins it)"; return 3; }
  cat > "$p/Modelfile" <<EOF
FROM $OLLAMA_GGUF
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
PARAMETER stop "<|im_end|>"
${OLLAMA_NUM_THREAD:+PARAMETER num_thread $OLLAMA_NUM_THREAD}
EOF
  OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT HOME=$p/home "$p/bin/ollama" create "$OLLAMA_MODEL" -f "$p/Modelfile" \
    > "$LOG/ollama-create.log" 2>&1
  local rc=$?; tail -3 "$LOG/ollama-create.log"; return $rc
}

# The model must sit wholly in GPU memory with every layer offloaded; the evidence goes to
# $RES/ollama-check.json for the report.
phase_ollama_check() {
  local reply ps log; log=$(ollama_log)
  ollama_up || { say "ollama is not up"; return 4; }
  reply=$(curl -sf "$OLLAMA_URL/api/chat" -d "{\"model\":\"$OLLAMA_MODEL\",\"stream\":false,
    \"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"options\":{\"num_predict\":16}}")
  ps=$(curl -sf "$OLLAMA_URL/api/ps")
  OLLAMA_REPLY=$reply OLLAMA_PS=$ps py "$HERE/ollama_check.py" "$log" "$OLLAMA_MODEL" "$(ollama_slots)" \
    "$RES/ollama-check.json"
}

e2e_ollama() {  # MODE COUNT E2E_ARGS...
  local name count=$2 timeout; name="ollama-$1-p$(ollama_slots)"; shift 2
  if [ "${SKIP_DONE:-0}" = 1 ] && [ -f "$RES/e2e-$name.json" ]; then say "done before: $name"; return 0; fi
  ollama_up || { say "ollama is not up"; return 4; }
  (exec 3<>/dev/tcp/127.0.0.1/"$KAFKA_PORT") 2>/dev/null || { say "kafka is not up"; return 5; }
  timeout=$(python3 -c "print(int(min($count / (0.5 * $OLLAMA_RATE_HINT) + 60, $(secs_left) - 45)))")
  say "$name: $count requests, result timeout ${timeout}s"
  py "$HERE/e2e.py" --name "$name" --requests "$W/requests-schema.jsonl" --count "$count" \
    --bootstrap "$BOOTSTRAP" --backend ollama --engine "$OLLAMA_URL" --model "$OLLAMA_MODEL" \
    --lengths "$W/prompt-lengths.json" --work-dir "$B/e2e" --timeout "$timeout" \
    --out-json "$RES/e2e-$name.json" --structured-output \
    ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"} "$@" > "$LOG/e2e-$name.log" 2>&1
  local rc=$?; tail -1 "$LOG/e2e-$name.log"; return $rc
}
phase_e2e_ollama_adaptive() { e2e_ollama adaptive "$N_OLLAMA"; }
e2e_ollama_fixed() {  # WINDOW
  local n=$N_OLLAMA; [ "$1" = 8 ] && n=$N_OLLAMA_FIXED8
  e2e_ollama "fixed$1" "$n" --window-policy fixed --window "$1" --window-max "$1"
}

phase_ollama_probe() {
  local name; name="ollama-probe-p$(ollama_slots)-n$OLLAMA_PROBE_TOKENS"
  ollama_up || { say "ollama is not up"; return 4; }
  timeout $(( $(secs_left) - 10 )) python3 "$HERE/ollama_probe.py" --url "$OLLAMA_URL" \
    --model "$OLLAMA_MODEL" --parallel 4 --num-predict "$OLLAMA_PROBE_TOKENS" --out "$RES/$name.json"
}
