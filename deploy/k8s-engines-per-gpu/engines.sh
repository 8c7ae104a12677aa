#!/bin/bash
# Several vLLM engines in one container, on the pod's one GPU, started one after another.
#
# Each engine sizes its KV cache from the GPU memory it finds free as it starts, so an engine
# starts only once the one before it answers /health: engines started together mis-size their
# caches or run out of memory. The container lives as long as every engine does: when one
# exits, the others are stopped and the container exits with its status, so the kubelet
# restarts them together, in order, on an empty GPU.
#
# Arguments: the vLLM flags every engine shares (the Deployment's args).
# Environment:
#   ENGINE_PORTS  one engine per port, in start order ["8000 8001"]
#   ENGINE_MEM    each engine's --gpu-memory-utilization (kustomization.yaml says why)
set -u

ports=${ENGINE_PORTS:-8000 8001}
mem=${ENGINE_MEM:?the share of the GPU memory of each engine}
pids=()
sleeper=

stop_all() {
    # shellcheck disable=SC2086  # no sleeper yet: nothing
    kill -TERM "${pids[@]}" $sleeper 2>/dev/null
    wait
}
# bash is the container's PID 1, which ignores SIGTERM unless it is trapped: pass it on and
# wait, so the engines shut down within the pod's grace period.
trap 'stop_all; exit 143' TERM INT

healthy() {  # PORT
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/health', timeout=5)" \
        2>/dev/null
}

for port in $ports; do
    vllm serve "$@" --port "$port" --gpu-memory-utilization "$mem" &
    pid=$!
    pids+=("$pid")
    echo "engines.sh: engine on port $port starting (pid $pid)"
    until healthy "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "engines.sh: engine on port $port exited before it was healthy" >&2
            stop_all
            exit 1
        fi
        sleep 2
    done
    echo "engines.sh: engine on port $port healthy"
done

# Every engine is up: the first to exit takes the others down with it. wait -n returns as soon
# as one exits; the sleep it also waits for bounds the check to a few seconds should an engine
# exit just before wait -n begins (bash may then not report it to wait -n at all).
while true; do
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            status=$?
            echo "engines.sh: engine pid $pid exited ($status), stopping the others" >&2
            stop_all
            exit "$status"
        fi
    done
    sleep 5 &
    sleeper=$!
    wait -n
    kill "$sleeper" 2>/dev/null
done
