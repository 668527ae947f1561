"""The OpenVINO backend: the folded graph's ONNX export, compiled by OpenVINO's CPU plugin.

- f32 inference precision is explicit: on CPUs with bf16 or AMX the plugin would otherwise
  pick bf16 and change the logits.
- The graph is compiled with a static batch of 1 and a batch runs sample by sample. On the
  reference CPU that measured faster than one dynamic-batch call (bench/README numbers): the
  CPU plugin fuses SA's gate, residual add and ReLU into one JIT subgraph only for static
  shapes, and one sample's block output stays in cache between SA's passes.
- The static model is saved as OpenVINO IR beside the ONNX export, and the plugin's compiled
  blob goes to ``CACHE_DIR`` (``<cache_dir>/openvino``): a restart reads neither ONNX nor IR.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

IR_VERSION = "1"  # bump when the saved IR changes (static shape, passes), to ignore old files
CACHE_SUBDIR = "openvino"


def ov_version() -> str:
    import openvino as ov

    return str(ov.get_version()).split("-")[0]


def ov_config(threads: int | None, cache_dir: str | Path | None) -> dict[str, Any]:
    """Plugin settings: f32, latency hint, ``threads`` intra-op threads, the blob cache."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
    }
    if cache_dir is not None:
        config["CACHE_DIR"] = str(Path(cache_dir) / CACHE_SUBDIR)
    return config


def static_model(onnx: Path, input_size: int = 224) -> Any:
    """The ONNX graph as an OpenVINO model with input shape (1, 3, size, size)."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx))
    model.reshape([1, 3, input_size, input_size])
    return model


def ir_path(onnx: Path, tag: str = "b1") -> Path:
    """Where the IR derived from ``onnx`` is kept (beside it, named by versions and ``tag``)."""
    return onnx.with_name(f"{onnx.stem}-ov{ov_version()}-ir{IR_VERSION}-{tag}.xml")


def save_ir(model: Any, path: Path) -> Path:
    """Write ``model`` as IR (weights kept f32: the default would compress them to f16)."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".partial-" + path.name)
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)  # the .xml last: its presence means both files are complete
    return path


class OvRunner:
    """Callable float32 torch batch -> float32 torch logits on one compiled model.

    ``model`` is an IR/ONNX path or an in-memory ``openvino.Model`` with a batch-1 input.
    One infer request serves every call (the service has one inference worker; a lock keeps
    other callers correct).
    """

    def __init__(self, model: Any, threads: int | None, cache_dir: str | Path | None) -> None:
        import openvino as ov

        source = str(model) if isinstance(model, Path) else model
        self.compiled = ov.Core().compile_model(source, "CPU", ov_config(threads, cache_dir))
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def _one(self, sample: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: sample}, share_inputs=True)
        return np.array(result[0], copy=True)  # the request reuses its output buffer

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to(torch.float32).contiguous().numpy()
        with self._lock:
            rows = [self._one(array[i : i + 1]) for i in range(array.shape[0])]
        return torch.from_numpy(np.concatenate(rows, axis=0))


def compile_openvino(
    onnx: Path, *, threads: int | None = None, cache_dir: str | Path | None = None
) -> OvRunner:
    """An :class:`OvRunner` for the exported graph ``onnx`` (IR and blob cached with a dir)."""
    if cache_dir is None:
        return OvRunner(static_model(onnx), threads, None)
    ir = ir_path(onnx)
    if not ir.is_file():
        log.info("openvino: writing IR %s", ir)
        save_ir(static_model(onnx), ir)
    return OvRunner(ir, threads, cache_dir)
