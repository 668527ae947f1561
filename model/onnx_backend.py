"""The onnxruntime backend: export the folded graph once, run it in an ORT session.

The export is cached under ``cache_dir`` by a caller-given key (``model/export_cache.py``), so
a restart skips the export; ``model/artefact_cache.py`` makes that cache heal (a corrupt
export is rebuilt once, an unwritable dir falls back to a private temp dir).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.artefact_cache import partial_path

log = logging.getLogger(__name__)

EXPORT_VERSION = "3"  # bump when the exported graph changes, so stale caches are ignored
INPUT, OUTPUT = "images", "logits"


@contextlib.contextmanager
def _removed_on_error(path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def export_onnx(module: nn.Module, path: Path, input_size: int = 224) -> Path:
    """Export ``module`` with a dynamic batch axis to ``path`` (atomically)."""
    import onnx  # noqa: F401  (fail early with a clear ImportError)

    example = torch.zeros(2, 3, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    tmp = partial_path(path.parent, path.suffix)  # a killed export leaves only a partial
    # The exporter logs a warning per torchvision op it cannot register; we use none.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), _removed_on_error(tmp):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            tmp,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes={"x": {0: batch}},
            dynamo=True,
            optimize=True,
            external_data=False,
            verbose=False,
        )
    os.replace(tmp, path)
    return path


def session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # Spinning threads would steal the cores that decode and preprocess images.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OrtRunner:
    """Callable wrapper: float32 torch batch -> float32 torch logits."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        self.path = path
        self.session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to(torch.float32).contiguous().numpy()
        (logits,) = self.session.run([OUTPUT], {INPUT: array})
        return torch.from_numpy(logits)
