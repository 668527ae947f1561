# sanet-serve: every entry point a developer or CI needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv serve test test-unit test-api test-faults test-deploy test-cuda test-bench lint docs bench bench-dataplane bench-gpu gpu-wheels bench-model bench-e2e bench-signal soak docker-smoke clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: venv
	@echo "Try it:  curl -s -H 'Content-Type: image/jpeg' --data-binary @samples/coffee.jpg 'http://127.0.0.1:8000/classify?top_k=3'"
	$(BIN)/sanet-serve

test: venv
	$(BIN)/python -m pytest -q tests bench/tests

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

test-api: venv
	$(BIN)/python -m pytest -q tests/api

test-faults: venv
	$(BIN)/python -m pytest -q tests/faults

test-deploy: venv
	$(BIN)/python -m pytest -q tests/deploy

test-cuda: venv
	$(BIN)/python -m pytest -q tests/cuda

test-bench: venv
	$(BIN)/python -m pytest -q bench/tests

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# docs/settings.md from the Settings object (service/config.py); a unit test fails while stale
docs: venv
	$(BIN)/python -m testing.settings_doc --write

# The fused-SA OpenVINO custom op (a dropped route, docs/performance.md) is not part of make
# bench; run it by hand: python -m bench.openvino_sa_op --rounds 10

LOAD_ARGS ?= --images samples/coffee.jpg --concurrency 1 4 16 --rate 5 10 15 20 \
	--config torchscript:SANET_BACKEND=torchscript --config onnxruntime:SANET_BACKEND=onnxruntime

bench: venv
	$(BIN)/python -m bench.model.speed --rounds 20
	$(BIN)/python -m bench.model.speed --rounds 10 --warmup 2 --backends onnxruntime openvino --int8 --bf16 --out model_speed_openvino.json
	$(BIN)/python -m bench.model.fidelity
	$(BIN)/python -m bench.pipeline.inprocess --backends openvino onnxruntime
	$(BIN)/python -m bench.pipeline.decode --rounds 9
	$(BIN)/python -m bench.http.load $(LOAD_ARGS)
	$(BIN)/python -m bench.http.frontend $(FRONTEND_ARGS)
	$(BIN)/python -m bench.engine.socket_load --inflight 1 8 64 128 --seconds 4
	$(BIN)/python -m bench.http.overload --backend null $(OVERLOAD_ARGS)
	$(BIN)/python -m bench.http.overload --backend torchscript --model sanet_tiny $(OVERLOAD_ARGS)
	$(BIN)/python -m bench.e2e.run $(E2E_ARGS)

# The data path without a network (SANET_BACKEND=null): front-end img/s and server CPU per
# image, 1 and 2 front-end processes interleaved; then goodput at 1x/4x/16x saturation.
# Both drive the server with Debian's hey (apt-get install hey).
FRONTEND_ARGS ?= --workers 1 2 --rounds 3 --duration 10 --concurrency 16
OVERLOAD_ARGS ?= --duration 10

bench-dataplane: venv
	$(BIN)/python -m bench.http.frontend $(FRONTEND_ARGS)
	$(BIN)/python -m bench.http.overload --backend null $(OVERLOAD_ARGS)
	$(BIN)/python -m bench.http.overload --backend torchscript --model sanet_tiny $(OVERLOAD_ARGS)

# minutes, outside make test: a burst of large images, then steady traffic; RSS and p99 drift
SOAK_ARGS ?= --minutes 3 --concurrency 4 --burst 8 --side 7000

soak: venv
	$(BIN)/python -m bench.http.soak $(SOAK_ARGS)

bench-model: venv
	$(BIN)/python -m bench.model.speed

# sanet-serve fp32 / bf16 (on a CPU with bf16) / INT8 beside the user's alternative
# (bench/e2e/baseline.py: the authors' unfolded ONNX export on LitServe, onnxruntime and
# OpenVINO), docs/performance.md "Against the authors' export on LitServe"; SANet-50,
# coffee.jpg, c=1 and 16, configs resident (idle burners per turn), interleaved rounds
E2E_ARGS ?= --rounds 5 --duration 20 --warmup 3 --concurrency 1 16 --min-requests 320

bench-e2e: venv
	$(BIN)/python -m bench.e2e.run $(E2E_ARGS)

# Each autoscaling signal beside p99, closed and open loop (docs/deploy.md "Autoscaling")
bench-signal: venv
	$(BIN)/python -m bench.http.signal --model sanet50 --concurrency 1 2 4 8 \
		--rate-fractions 0.2 0.35 0.5 0.6 0.7 0.8 0.9 1.0 --duration 12

# On a GPU host, one call of <= 7 minutes: the model-only table, end to end over HTTP,
# tests/cuda, one summary table (docs/performance.md "GPU"). Uses that host's python3
# (PYTHON=...) and its torch; the server stack comes from .whl/ (make gpu-wheels, here).
bench-gpu:
	bash bench/gpu.sh

# The exact cp312 wheel set the GPU host lacks (never torch, triton, nvidia-*), into .whl/
gpu-wheels: venv
	$(BIN)/python -m bench.gpu_wheels --dest .whl

docker-smoke:
	bash deploy/docker-smoke.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
