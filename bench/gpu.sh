#!/usr/bin/env bash
# make bench-gpu: everything the GPU host measures, in one call of at most 8 minutes, with the
# host's own python3 and torch. Writes results under ${OUT:-bench/results/gpu}; prints tables.
#   1. tests/cuda                                  (<= 2 min)
#   2. python -m bench.gpu_model: the model-only table (ResNet-50, SANet-50 routes, b1..128)
#   3. end to end over HTTP: sanet-serve (SANet-50 fp16, every front end the cores allow),
#      coffee.jpg from several client processes at c=64 and c=256, with the GPU busy fraction
#      (nvidia-smi) and the server's CPU per image (bench.http.load --server-pid)
# Carried wheels of the server stack (.whl/, see docs/performance.md) are installed first.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader;
  $PY -c "import triton; print('triton', triton.__version__)" || echo "triton: not installed"; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; lscpu | grep 'Model name'; nproc; } | tee "$OUT/host.txt"

echo "== tests/cuda"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/cuda 2>&1 | tail -15 | tee "$OUT/tests_cuda.txt"

echo "== model only"
timeout 180 $PY -m bench.gpu_model --budget-s 140 --out "$OUT/gpu_model.json" 2>&1 | tail -40 | tee "$OUT/gpu_model.txt"

echo "== end to end"
PORT=18080
# DEVICE=cpu PRECISION=fp32 MODEL=sanet_tiny bash bench/gpu.sh: a dry run of this part on CPU
MODEL=${MODEL:-sanet50}
SANET_MODELS=$MODEL SANET_DEVICE=${DEVICE:-cuda} SANET_PRECISION=${PRECISION:-fp16} SANET_MAX_BATCH_SIZE=128 \
SANET_MAX_QUEUE=1024 SANET_MAX_DELAY_MS=2 SANET_PORT=$PORT SANET_GRPC_PORT=0 \
SANET_LOG_LEVEL=warning SANET_CACHE_DIR=/tmp/sanet-cache \
    $PY -m service > "$OUT/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 180); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 $SERVER 2>/dev/null || { echo "server exited"; tail -30 "$OUT/server.log"; exit 1; }
    sleep 0.5
done
nvidia-smi --query-gpu=timestamp,utilization.gpu --format=csv,noheader,nounits -lms 250 \
    > "$OUT/gpu_util.csv" 2>/dev/null &
SMI=$!
timeout 150 $PY -m bench.http.load --url "http://127.0.0.1:$PORT" --server-pid $SERVER \
    --model "$MODEL" --images samples/coffee.jpg --processes 6 --concurrency 64 256 \
    --duration 15 --warmup 3 --out "$OUT/e2e.json" --plot "$OUT/e2e.png" 2>&1 | tail -20 | tee "$OUT/e2e.txt"
kill $SMI 2>/dev/null
$PY - "$OUT/gpu_util.csv" <<'PY' | tee -a "$OUT/e2e.txt"
import sys
rows = [line.split(",") for line in open(sys.argv[1]) if line.count(",") == 1]
busy = sorted(float(r[1]) for r in rows if r[1].strip())
if busy:
    print(f"GPU utilisation while loaded: median {busy[len(busy) // 2]:.0f} %, "
          f"p90 {busy[int(0.9 * (len(busy) - 1))]:.0f} % ({len(busy)} samples)")
PY
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^sanet_(inference_busy|images_total|slots)' | tee -a "$OUT/e2e.txt"
kill -TERM $SERVER
wait $SERVER
echo "server exit $?"
