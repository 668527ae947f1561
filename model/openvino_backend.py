"""The OpenVINO backend: the folded graph's ONNX export, compiled by OpenVINO's CPU plugin.

- The inference precision is explicit: f32 unless bf16 is asked for (``SANET_PRECISION=bf16``),
  since on CPUs with bf16 or AMX the plugin would otherwise pick bf16 and change the logits.
- A batch runs sample by sample through the dynamic-batch graph. On the reference CPU that
  measured faster than one batch-8 call for both ResNet-50 and SANet-50 (one sample's block
  output stays in cache between SA's passes), and faster for SA than a static batch-1
  graph, where the plugin's "snippets" JIT subgraph for SA's gate measured slower than its
  ordinary fused eltwise kernels (docs/performance.md).
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
from model.errors import EngineError

log = logging.getLogger(__name__)

IR_VERSION = "2"  # bump when the saved INT8 IR changes (shape, passes), to ignore old files
CACHE_SUBDIR = "openvino"


def ov_version() -> str:
    import openvino as ov

    return str(ov.get_version()).split("-")[0]


#: the service's precision -> the plugin's INFERENCE_PRECISION_HINT (int8 IR computes in f32)
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}


def ov_config(
    threads: int | None, cache_dir: str | Path | None, precision: str = "fp32"
) -> dict[str, Any]:
    """Plugin settings: the precision hint, latency hint, ``threads`` intra-op threads, the
    blob cache."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",
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
    """Callable float32 torch batch -> float32 torch logits on one compiled model.

    ``model`` is an IR/ONNX path or an in-memory ``openvino.Model``; each sample of a batch
    is one inference (see the module docstring). One infer request serves every call (the
    service has one inference worker; a lock keeps other callers correct).
    """

    def __init__(
        self,
        model: Any,
        threads: int | None,
        cache_dir: str | Path | None,
        precision: str = "fp32",
    ) -> None:
        import openvino as ov

        source = str(model) if isinstance(model, Path) else model
        config = ov_config(threads, cache_dir, precision)
        self.compiled = ov.Core().compile_model(source, "CPU", config)
        got = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if got != config["INFERENCE_PRECISION_HINT"]:  # the plugin falls back without a word
            raise EngineError(f"OpenVINO's CPU plugin runs {got}, not {precision}, on this CPU")
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def _one(self, sample: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: sample}, share_inputs=True)
        return np.array(result[0], copy=True)  # the request reuses its output buffer

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        dtype = torch.uint8 if batch.dtype == torch.uint8 else torch.float32
        array = batch.detach().to(dtype).contiguous().numpy()
        with self._lock:
            rows = [self._one(array[i : i + 1]) for i in range(array.shape[0])]
        return torch.from_numpy(np.concatenate(rows, axis=0))


def compile_openvino(
    onnx: Path,
    *,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    precision: str = "fp32",
) -> OvRunner:
    """An :class:`OvRunner` for the exported graph ``onnx`` (blob cached with a cache dir)."""
    return OvRunner(onnx, threads, cache_dir, precision)


def uint8_model(onnx: Path) -> Any:
    """The export with a uint8 NHWC input, normalised by OpenVINO's PrePostProcessor.

    u8 -> f32, NHWC -> NCHW, ``(x - 255 mean) / (255 std)``: compiled into the graph, where
    the plugin fuses it with the first convolution's input reorder.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    from model.preprocess import MEAN, STD

    ppp = PrePostProcessor(read_model(onnx))
    entry = ppp.input()
    entry.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    steps = entry.preprocess().convert_element_type(ov.Type.f32)
    steps.mean([255.0 * m for m in MEAN]).scale([255.0 * s for s in STD])
    entry.model().set_layout(ov.Layout("NCHW"))
    return ppp.build()


def compile_openvino_uint8(
    onnx: Path,
    *,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    precision: str = "fp32",
) -> OvRunner:
    """An :class:`OvRunner` taking uint8 (B, 224, 224, 3) NHWC batches (:func:`uint8_model`)."""
    return OvRunner(uint8_model(onnx), threads, cache_dir, precision)
