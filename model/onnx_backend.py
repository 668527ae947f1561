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
PIXELS = "pixels"  # the uint8 NHWC input of uint8_graph


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


def uint8_graph(path: Path) -> bytes:
    """The export at ``path`` with a uint8 (B, 224, 224, 3) NHWC input ``pixels``.

    Its first nodes are the normalisation (Transpose on uint8, 4x fewer bytes than after the
    cast, then Cast, Mul, Sub: :func:`model.preprocess.normalize`'s math); they write the old
    float input's name, so the rest of the graph is untouched. Serialised for a session.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from model.uint8_input import SCALE, SHIFT

    model = onnx.load(str(path))
    graph = model.graph
    old = graph.input[0]
    dims = old.type.tensor_type.shape.dim
    batch = dims[0].dim_param or dims[0].dim_value
    size = (dims[2].dim_value, dims[3].dim_value)
    pixels = helper.make_tensor_value_info(PIXELS, TensorProto.UINT8, [batch, *size, 3])
    graph.initializer.extend(
        [
            numpy_helper.from_array(SCALE.reshape(1, 3, 1, 1), "pixels_scale"),
            numpy_helper.from_array(SHIFT.reshape(1, 3, 1, 1), "pixels_shift"),
        ]
    )
    nodes = [
        helper.make_node("Transpose", [PIXELS], ["pixels_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["pixels_nchw"], ["pixels_f32"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pixels_f32", "pixels_scale"], ["pixels_scaled"]),
        helper.make_node("Sub", ["pixels_scaled", "pixels_shift"], [old.name]),
    ]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    graph.input.remove(old)
    graph.input.insert(0, pixels)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


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
    """Callable wrapper: torch batch -> float32 torch logits.

    ``model`` is an export's path (float32 NCHW input) or :func:`uint8_graph`'s bytes (uint8
    NHWC input); the batch is passed in the session's input type.
    """

    def __init__(self, model: Path | bytes, threads: int | None) -> None:
        import onnxruntime as ort

        self.path = model if isinstance(model, Path) else None
        source = str(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(
            source, session_options(threads), providers=["CPUExecutionProvider"]
        )
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.dtype = torch.uint8 if first.type == "tensor(uint8)" else torch.float32

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to(self.dtype).contiguous().numpy()
        (logits,) = self.session.run([OUTPUT], {self.input: array})
        return torch.from_numpy(logits)
