"""Inference compilation: one function per backend, each returning a :class:`CompiledModel`.

Backends: ``eager`` (reference), ``torchscript`` (scripted and frozen), ``onnxruntime`` and
``openvino`` (both from the ONNX export of the folded graph, CPU). Here ``auto`` is a fixed
per-device default; ``model.build_engine`` measures the candidates instead (the service's
path). Folding (README "How SA becomes nearly free") is applied first unless ``fold=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from model.errors import UnknownModelError
from model.folding import fold_model, use_fused_sa
from model.fused import load_fused_sa
from model.sanet import SANet
from model.scripting import script_module

BACKENDS = ("eager", "torchscript", "onnxruntime", "openvino")
EXPORTED = ("onnxruntime", "openvino")  # run from the ONNX export, on CPU only
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Chosen from bench/model_speed.py on the reference CPU and GPU (README, "Performance").
AUTO_BACKEND = {"cpu": "onnxruntime", "cuda": "torchscript"}


@dataclass
class CompiledModel:
    """A callable mapping a float32 (B, 3, H, W) CPU batch to float32 CPU logits."""

    run: Callable[[torch.Tensor], torch.Tensor]
    backend: str
    device: str
    precision: str
    folded: bool
    num_classes: int
    fused: bool = False  # SA through the fused CPU kernel (model/fused.py)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.run(batch)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UnknownModelError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def resolve_backend(backend: str, device: str) -> str:
    if backend == "auto":
        return AUTO_BACKEND[device]
    if backend not in BACKENDS:
        raise UnknownModelError(f"unknown backend {backend!r}; known: auto, {', '.join(BACKENDS)}")
    if backend in EXPORTED and device != "cpu":
        raise UnknownModelError(f"the {backend} backend runs on cpu only here")
    return backend


def prepare(net: nn.Module, fold: bool) -> nn.Module:
    """``net`` in eval mode, or its folded copy (README "How SA becomes nearly free")."""
    net = net.eval()
    if fold and isinstance(net, SANet):
        return fold_model(net)
    return net


def compile_model(
    net: nn.Module,
    backend: str = "torchscript",
    *,
    fold: bool = True,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
    fused: bool | None = None,
) -> CompiledModel:
    """Compile ``net`` for inference on ``device`` with ``backend``.

    ``threads`` bounds the intra-op threads of the onnxruntime/openvino engines (torch
    backends use the process-wide ``torch.set_num_threads``). ``cache_dir`` + ``cache_key``
    (``model.export_cache.cache_key``) let them reuse an earlier export and compiled blob. ``fused``
    (default: when it builds) runs folded SA through the fused CPU kernel on the torch
    backends.
    """
    device = resolve_device(device)
    backend = resolve_backend(backend, device)
    if precision not in PRECISIONS:
        raise UnknownModelError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if device == "cpu" and precision != "fp32":
        raise UnknownModelError("reduced precision is for cuda; use fp32 on cpu")
    num_classes = _num_classes(net)
    module = prepare(net, fold)
    use_fused = False
    if fold and device == "cpu" and backend not in EXPORTED and fused is not False:
        use_fused = load_fused_sa() and use_fused_sa(module) > 0
        if fused and not use_fused:
            raise UnknownModelError("the fused SA kernel could not be built on this machine")
    run: Callable[[torch.Tensor], torch.Tensor]
    if device == "cuda":
        from model.cuda import compile_cuda

        run = compile_cuda(module, backend, PRECISIONS[precision])
    elif backend in EXPORTED:
        run = _compile_exported(module, backend, threads, cache_dir, cache_key)
    elif backend == "torchscript":
        run = script_module(module)
    else:
        run = module
    return CompiledModel(run, backend, device, precision, fold, num_classes, use_fused)


def _compile_exported(
    module: nn.Module,
    backend: str,
    threads: int | None,
    cache_dir: str | Path | None,
    cache_key: str | None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    from model.export_cache import onnx_file

    with onnx_file(module, cache_dir, cache_key) as path:
        if backend == "openvino":
            from model.openvino_backend import compile_openvino

            ov_cache = cache_dir if cache_key else None
            return compile_openvino(path, threads=threads, cache_dir=ov_cache)
        from model.onnx_backend import OrtRunner

        return OrtRunner(path, threads)


def _num_classes(net: nn.Module) -> int:
    fc = getattr(net, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else -1
