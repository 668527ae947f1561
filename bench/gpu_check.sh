#!/usr/bin/env bash
# Issue 19's checks on a GPU host, in one call of at most ~7.5 minutes: the versions, the CUDA
# test tier (target: under 2 minutes), then the model-only table (bench/gpu_model.py, <= 4 min).
#   bench/gpu_check.sh [results.json]      (default bench/results/gpu_model.json)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/gpu_model.json}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
python -c "import triton; print('triton', triton.__version__)" || echo "triton: not installed"
start=$(date +%s)
timeout 180 python -m pytest -q -p no:cacheprovider tests/cuda
tests_rc=$?
echo "tests/cuda: rc=${tests_rc} in $(( $(date +%s) - start )) s"
timeout 270 python -m bench.gpu_model --out "$out"
bench_rc=$?
echo "bench.gpu_model: rc=${bench_rc}, results in ${out}"
exit $(( tests_rc != 0 || bench_rc != 0 ))
