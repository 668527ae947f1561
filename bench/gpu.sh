#!/usr/bin/env bash
# make bench-gpu: what the GPU host measures, in one call of at most 7 minutes (TOTAL_S), with
# the host's own python3 and torch. Each step runs in its own process group under a budget
# (the budgets sum to at most TOTAL_S, checked before anything starts), writes its rows to
# $OUT/rows.jsonl as it goes, and a failed or overrun step is recorded and makes the exit
# non-zero. Whatever ends the script (the end, a failure, SIGTERM, Ctrl-C), the EXIT trap
# stops every process group it started and prints the summary table ($OUT/summary.md).
#   wheels     carried wheels (.whl/expected.txt, `make gpu-wheels`) into $SITE; never torch,
#              triton or nvidia-* (python -m bench.gpu_wheels --files refuses them)
#   preflight  every server module imports and torch.cuda.is_available(), else one line and stop
#   model      python -m bench.gpu_model: ResNet-50 and SANet-50 per SA route, rows as timed
#   e2e        sanet-serve with the fastest SANet route, readiness (what B_E2E leaves after the
#              load: 74 s by default, above the 60 s cold-start target; curl -m 2), load
#              at c=64 and c=256 from several client processes, GPU busy, server CPU per image
#   tests      tests/cuda (budget for five inductor compiles)
# Dry run on CPU (bench/tests/test_gpu_sh.py): DEVICE=cpu MODEL=sanet_tiny PRECISION=fp32
# BACKEND=torchscript MODEL_ARGS="--dry-run --routes resnet eager" LEVELS="2 4" ...
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/results/gpu}
SITE=${SITE:-/tmp/site}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-fp16}
MODEL=${MODEL:-sanet50}
BACKEND=${BACKEND:-best}   # best: the fastest SANet route of the model step (else a SANET_BACKEND)
MODEL_ARGS=${MODEL_ARGS:---dtypes fp16 bf16}
LEVELS=${LEVELS:-64 256}
CLIENTS=${CLIENTS:-6}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
PORT=${PORT:-18080}
STEPS=${STEPS:-wheels preflight model e2e tests}
READY_MAX_S=${READY_MAX_S:-300}
TOTAL_S=420
B_WHEELS=${B_WHEELS:-15} B_PREFLIGHT=${B_PREFLIGHT:-15} B_MODEL=${B_MODEL:-75}
B_E2E=${B_E2E:-125} B_TESTS=${B_TESTS:-180} B_STOP=10  # B_STOP: the trap's stop and summary
budget=$((B_WHEELS + B_PREFLIGHT + B_MODEL + B_E2E + B_TESTS + B_STOP))
if [ "$budget" -gt "$TOTAL_S" ]; then
    echo "gpu.sh: the step budgets sum to ${budget}s, more than ${TOTAL_S}s" >&2
    exit 2
fi

mkdir -p "$OUT"
ROWS=$OUT/rows.jsonl
: > "$ROWS"
FAILED=()
GROUPS_STARTED=()

row() { printf '%s\n' "$1" >> "$ROWS"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
has_step() { [[ " $STEPS " == *" $1 "* ]]; }

stop_groups() {
    local pg alive
    for pg in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    for _ in $(seq 1 16); do
        alive=0
        for pg in "${GROUPS_STARTED[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.5
    done
    for pg in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    stop_groups
    echo "== summary"
    $PY -m bench.gpu_summary --rows "$ROWS" --cores "$(nproc)" --out "$OUT/summary.md" || rc=1
    if [ "${#FAILED[@]}" -gt 0 ]; then
        echo "gpu.sh: failed steps: ${FAILED[*]}"
        [ "$rc" = 0 ] && rc=1
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

failed() {  # failed NAME RC: record a step that failed (124/137: it ran out of its budget)
    local why=exit
    if [ "$2" = 124 ] || [ "$2" = 137 ]; then why=timeout; fi
    FAILED+=("$1")
    row "{\"step\": \"$1\", \"failed\": true, \"rc\": $2, \"why\": \"$why\"}"
}

# start NAME BUDGET CMD...: CMD in its own process group, killed at BUDGET seconds, its output
# in $OUT/NAME.log; sets PID
start() {
    local name=$1 limit=$2
    shift 2
    setsid timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1 &
    PID=$!
    GROUPS_STARTED+=("$PID")
}

# step NAME BUDGET CMD...: run CMD as a step and wait for it (a signal interrupts the wait)
step() {
    local name=$1 rc=0
    echo "== $name (<= ${2}s)"
    start "$@"
    wait "$PID" || rc=$?
    tail -n 30 "$OUT/$name.log"
    [ "$rc" = 0 ] || { failed "$name" "$rc"; return 1; }
}

export PYTHONPATH=$PWD
if has_step wheels && [ -f .whl/expected.txt ]; then
    wheels=$($PY -m bench.gpu_wheels --files .whl)  # exits naming a torch/triton/nvidia wheel
    # shellcheck disable=SC2086  # one argument per wheel file
    step wheels "$B_WHEELS" $PY -m pip install -q --no-index --no-deps --target "$SITE" $wheels
    export PYTHONPATH=$SITE:$PWD
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  lscpu | grep 'Model name' || true; nproc; } > "$OUT/host.txt" 2>&1

if has_step preflight; then
    step preflight "$B_PREFLIGHT" $PY -m bench.gpu_check --device "$DEVICE" --site "$SITE" \
        --rows "$ROWS" || exit 1
fi

if has_step model; then
    # shellcheck disable=SC2086  # MODEL_ARGS is a list of arguments
    step model "$B_MODEL" $PY -m bench.gpu_model --budget-s $((B_MODEL * 2 / 3)) \
        --rows "$ROWS" --out "$OUT/gpu_model.json" $MODEL_ARGS || true
fi

e2e() {
    local served=$BACKEND url=http://127.0.0.1:$PORT t0 ready_s load_s left
    [ "$served" = best ] && served=$($PY -m bench.gpu_summary --rows "$ROWS" --best-backend)
    echo "== e2e (<= ${B_E2E}s): $MODEL $PRECISION, backend $served"
    # the load's own time, then what is left for readiness (at most READY_MAX_S)
    load_s=$(( $(wc -w <<< "$LEVELS") * (${DURATION%.*} + ${WARMUP%.*} + 5) + 5 ))
    left=$((B_E2E - load_s - B_STOP))
    ready_s=$(( left < READY_MAX_S ? left : READY_MAX_S ))
    t0=$(date +%s.%N)
    start server "$B_E2E" env SANET_MODELS="$MODEL" SANET_DEVICE="$DEVICE" \
        SANET_PRECISION="$PRECISION" SANET_BACKEND="$served" SANET_PORT="$PORT" \
        SANET_GRPC_PORT=0 SANET_LOG_LEVEL=warning SANET_CACHE_DIR=/tmp/sanet-cache $PY -m service
    local server=$PID
    until curl -sf -m 2 "$url/readyz" > /dev/null 2>&1; do
        if ! kill -0 "$server" 2>/dev/null; then
            echo "e2e: the server exited"; tail -n 30 "$OUT/server.log"; failed e2e 1; return 1
        fi
        if (( $(date +%s) - ${t0%.*} >= ready_s )); then
            echo "e2e: not ready within ${ready_s}s"; tail -n 30 "$OUT/server.log"
            failed e2e 124; return 1
        fi
        sleep 0.5
    done
    row "{\"step\": \"ready\", \"seconds\": $(since "$t0"), \"backend\": \"$served\"}"
    if command -v nvidia-smi > /dev/null; then
        setsid nvidia-smi --query-gpu=timestamp,utilization.gpu --format=csv,noheader,nounits \
            -lms 250 > "$OUT/gpu_util.csv" 2>/dev/null &
        GROUPS_STARTED+=("$!")
    fi
    curl -s -m 2 "$url/metrics" > "$OUT/metrics_before.txt"
    local l0 rc=0
    l0=$(date +%s.%N)
    # shellcheck disable=SC2086  # LEVELS is a list of concurrencies
    step e2e_load "$load_s" $PY -m bench.http.load --url "$url" --server-pid "$server" \
        --model "$MODEL" --images samples/coffee.jpg --processes "$CLIENTS" \
        --concurrency $LEVELS --duration "$DURATION" --warmup "$WARMUP" --rows "$ROWS" \
        --out "$OUT/e2e.json" --plot "$OUT/e2e.png" || rc=1
    curl -s -m 2 "$url/metrics" > "$OUT/metrics_after.txt" || true
    $PY -m bench.gpu_summary --rows "$ROWS" --util "$OUT/gpu_util.csv" \
        --busy "$OUT/metrics_before.txt" "$OUT/metrics_after.txt" \
        "$(since "$l0")" || true
    kill -TERM -- "-$server" 2>/dev/null || true
    return "$rc"
}
if has_step e2e; then e2e || true; fi

if has_step tests; then
    step tests "$B_TESTS" $PY -m pytest -v -p no:cacheprovider tests/cuda || true
    $PY -m bench.gpu_summary --rows "$ROWS" --pytest-log "$OUT/tests.log"
fi
