"""The user's alternative to sanet-serve: the authors' network, exported to ONNX as is, on LitServe.

What a user who skips this project would write: build the authors' SA-ResNet (``--weights``
in the authors' checkpoint layout, read by the project's loader; else ``model.random_init``
with the service's seed, so both answer alike), export it to ONNX **without** our folding,
run it in a plain ONNX Runtime session or
a plain OpenVINO ``compile_model(..., "CPU")`` (f32, the thread count, no other settings),
and serve it with LitServe's batching (``max_batch_size=8``, a small ``batch_timeout``, one
worker). ``POST /classify`` takes the raw image bytes and answers the top-5 labels and
probabilities; ``GET /health`` is 200 once the worker is set up. Decoding and preprocessing
are ``model.preprocess.preprocess``, the service's eval transform, so both pay the same decode.
LitServe decodes in its inference worker, one request after another: that is its design.

    python -m bench.e2e.baseline [--arch sanet50] [--weights W] [--engine onnxruntime|openvino]
        [--port 8000] [--threads N] [--batch-timeout 0.005] [--cache-dir DIR]

The export is kept in ``--cache-dir`` (default ``<sanet-serve cache>/baseline``): a restart
skips it. The port and host default to ``SANET_PORT`` / ``SANET_HOST``, which
``testing.servers.Spawned`` sets.
"""

# No ``from __future__ import annotations``: LitServe reads decode_request's annotation at
# run time to build the route, and a string there would not resolve.

import argparse
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import litserve as ls
import numpy as np
import torch
from fastapi import Body, HTTPException
from torch import nn

from model import load_checkpoint, preprocess, random_init
from model.compile import prepare
from model.errors import ImageError
from model.export_cache import cache_key, cached_onnx, default_cache_dir
from model.postprocess import labels_for, probabilities, top_k

log = logging.getLogger("bench.e2e.baseline")

ENGINES = ("onnxruntime", "openvino")
TOP_K = 5
#: the raw request body: FastAPI hands a non-JSON body over as bytes
ImageBytes = Annotated[bytes, Body(media_type="image/jpeg")]
Runner = Callable[[np.ndarray], np.ndarray]
_MAIN_PID = os.getpid()


@dataclass(frozen=True)
class Options:
    """What the inference worker needs to build its engine (pickled to that process)."""

    arch: str
    weights: Path | None
    engine: str
    threads: int
    cache_dir: Path


def authors_network(arch: str, weights: Path | None) -> tuple[nn.Module, str | None]:
    """The authors' network and its weights' sha256 (None: random init, the service's seed)."""
    if weights is None:
        return random_init(arch), None
    net, info = load_checkpoint(weights, arch=arch)
    return net, info.sha256


def export_unfolded(net: nn.Module, arch: str, sha256: str | None, cache_dir: Path) -> Path:
    """The ONNX export of ``net`` as the authors wrote it (no folding), cached by weights."""
    return cached_onnx(prepare(net, fold=False), cache_dir, f"{cache_key(arch, sha256)}-unfolded")


def onnxruntime_runner(path: Path, threads: int) -> Runner:
    """A plain ONNX Runtime CPU session: the library's defaults plus the thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def openvino_runner(path: Path, threads: int) -> Runner:
    """A plain OpenVINO CPU model: f32 (no bf16 on CPUs that have it) and the thread count."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    output = compiled.output(0)
    return lambda batch: compiled(batch)[output]


RUNNERS: dict[str, Callable[[Path, int], Runner]] = {
    "onnxruntime": onnxruntime_runner,
    "openvino": openvino_runner,
}


class AuthorsClassifier(ls.LitAPI):
    """decode (preprocess) -> batch -> ONNX engine -> unbatch -> top-5 JSON."""

    def __init__(self, options: Options, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(
            max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/classify"
        )
        self.options = options

    def setup(self, device: str) -> None:
        opts = self.options
        net, sha256 = authors_network(opts.arch, opts.weights)
        self.labels = labels_for(int(net.fc.out_features))  # type: ignore[union-attr,arg-type]
        path = export_unfolded(net, opts.arch, sha256, opts.cache_dir)
        del net
        self.engine = RUNNERS[opts.engine](path, opts.threads)
        log.info("%s ready: %s in %s, %d threads", opts.arch, path.name, opts.engine, opts.threads)

    def decode_request(self, request: ImageBytes) -> np.ndarray:
        try:
            return preprocess(request).numpy()
        except ImageError as exc:
            raise HTTPException(status_code=400, detail="cannot decode the image") from exc

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.engine(x)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict[str, Any]:
        probs = probabilities(torch.from_numpy(output))
        best = top_k(probs, TOP_K, self.labels)
        return {"predictions": [{"label": p.label, "probability": p.probability} for p in best]}


def _interrupt(_signum: int, _frame: object) -> None:
    # LitServe shuts its workers down on Ctrl+C only; SIGTERM takes the same path. Its forked
    # HTTP process inherits this handler and re-raises its own SIGTERM on exit: not there.
    if os.getpid() == _MAIN_PID:
        raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="sanet50")
    p.add_argument("--weights", type=Path, default=None, help="authors' checkpoint (else random)")
    p.add_argument("--engine", default="onnxruntime", choices=ENGINES)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    p.add_argument("--timeout", type=float, default=30.0, help="LitServe request timeout, s")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir() / "baseline")
    p.add_argument("--host", default=os.environ.get("SANET_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SANET_PORT", "8000")))
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    options = Options(args.arch, args.weights, args.engine, args.threads, args.cache_dir)
    api = AuthorsClassifier(options, args.max_batch_size, args.batch_timeout)
    server = ls.LitServer(
        api, accelerator="cpu", devices=1, workers_per_device=1, timeout=args.timeout
    )
    signal.signal(signal.SIGTERM, _interrupt)
    server.run(host=args.host, port=args.port, log_level=args.log_level, generate_client_file=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
