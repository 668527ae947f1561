"""The OpenVINO backend: the folded graph's ONNX export, compiled by OpenVINO's CPU plugin.

- f32 inference precision is explicit: on CPUs with bf16 or AMX the plugin would otherwise
  pick bf16 and change the logits.
- A batch runs sample by sample through the dynamic-batch graph: on the reference CPU that
  measured faster than one batch-8 call for both ResNet-50 and SANet-50 (one sample's block
  output stays in cache between SA's passes), and faster for SA than a static batch-1
  graph, where the plugin's "snippets" JIT subgraph for SA's gate measured slower than its
  ordinary fused eltwise kernels (README, Performance). A batch of one takes every thread;
  the samples of a larger batch run concurrently on the plugin's throughput streams.
- The plugin's compiled blob goes to ``CACHE_DIR`` (``<cache_dir>/openvino``), so a restart
  skips compilation. INT8 models (``model/quantize.py``) are saved as IR beside the export.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.artefact_cache import partial_path

log = logging.getLogger(__name__)

IR_VERSION = "2"  # bump when the saved INT8 IR changes (shape, passes), to ignore old files
CACHE_SUBDIR = "openvino"


def ov_version() -> str:
    import openvino as ov

    return str(ov.get_version()).split("-")[0]


def ov_config(
    threads: int | None, cache_dir: str | Path | None, hint: str = "LATENCY"
) -> dict[str, Any]:
    """Plugin settings: f32, the ``hint``, ``threads`` intra-op threads, the blob cache."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": hint,
        "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
    }
    if cache_dir is not None:
        config["CACHE_DIR"] = str(Path(cache_dir) / CACHE_SUBDIR)
    return config


def read_model(onnx: Path) -> Any:
    """The ONNX graph as an in-memory ``openvino.Model`` (dynamic batch axis)."""
    import openvino as ov

    return ov.Core().read_model(str(onnx))


def ir_path(onnx: Path, tag: str) -> Path:
    """Where the IR derived from ``onnx`` is kept (beside it, named by versions and ``tag``)."""
    return onnx.with_name(f"{onnx.stem}-ov{ov_version()}-ir{IR_VERSION}-{tag}.xml")


def save_ir(model: Any, path: Path) -> Path:
    """Write ``model`` as IR (weights kept f32: the default would compress them to f16)."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path.parent, ".xml")  # a dead writer's partial is removed at start
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)  # the .xml last: its presence means both files are complete
    return path


class OvRunner:
    """Callable float32 torch batch -> float32 torch logits on compiled OpenVINO models.

    ``model`` is an IR/ONNX path or an in-memory ``openvino.Model``. A batch of one runs on
    the latency-compiled model (one stream, every thread). Larger batches run their samples
    concurrently on a throughput-compiled copy (the plugin's streams, a thread or two each:
    less synchronisation per layer than one sample on all threads), compiled in the
    background after start so a restart is not slowed; until it is ready they run sample
    by sample. One caller at a time (the service has one inference worker; a lock keeps
    other callers correct).
    """

    def __init__(
        self,
        model: Any,
        threads: int | None,
        cache_dir: str | Path | None,
        use_streams: bool = True,
    ) -> None:
        import openvino as ov

        self._source = str(model) if isinstance(model, Path) else model
        self._threads, self._cache_dir = threads, cache_dir
        self.compiled = ov.Core().compile_model(self._source, "CPU", ov_config(threads, cache_dir))
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self._queue: Any = None
        self.streams = 0
        self._queue_ready = threading.Event()
        if use_streams and int(threads or torch.get_num_threads()) > 1:
            threading.Thread(target=self._compile_streams, name="ov-streams", daemon=True).start()
        else:
            self._queue_ready.set()

    def _compile_streams(self) -> None:
        import openvino as ov

        try:
            config = ov_config(self._threads, self._cache_dir, "THROUGHPUT")
            compiled = ov.Core().compile_model(self._source, "CPU", config)
            streams = self.streams = int(compiled.get_property("NUM_STREAMS"))
            if streams > 1:
                jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                self._queue = ov.AsyncInferQueue(compiled, max(jobs, streams))
                log.info("openvino: batches run on %d streams", streams)
        except Exception as exc:  # the latency model still serves every batch
            log.warning("openvino: no throughput streams (%s); batches run sample by sample", exc)
        finally:
            self._source = None  # the in-memory model is not needed any more
            self._queue_ready.set()

    def wait_streams(self, timeout: float | None = None) -> bool:
        """Block until the throughput copy is compiled (or given up); True when it is."""
        self._queue_ready.wait(timeout)
        return self._queue is not None

    def _one(self, sample: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: sample}, share_inputs=True)
        return np.array(result[0], copy=True)  # the request reuses its output buffer

    def _concurrent(self, array: np.ndarray) -> np.ndarray:
        rows: list[np.ndarray] = [array[:0]] * array.shape[0]

        def done(request: Any, index: int) -> None:
            rows[index] = np.array(request.get_output_tensor(0).data, copy=True)

        self._queue.set_callback(done)
        for i in range(array.shape[0]):
            self._queue.start_async({0: array[i : i + 1]}, i, share_inputs=True)
        self._queue.wait_all()
        return np.concatenate(rows, axis=0)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to(torch.float32).contiguous().numpy()
        with self._lock:
            if array.shape[0] > 1 and self._queue is not None:
                return torch.from_numpy(self._concurrent(array))
            rows = [self._one(array[i : i + 1]) for i in range(array.shape[0])]
        return torch.from_numpy(np.concatenate(rows, axis=0))


def compile_openvino(
    onnx: Path, *, threads: int | None = None, cache_dir: str | Path | None = None
) -> OvRunner:
    """An :class:`OvRunner` for the exported graph ``onnx`` (blob cached with a cache dir)."""
    return OvRunner(onnx, threads, cache_dir)
