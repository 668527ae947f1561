"""INT8 for CPU: NNCF post-training quantization of the folded graph, run by OpenVINO.

Calibration images come from a folder the user provides (``SANET_CALIBRATION_DIR`` or
``python -m model quantize --calibration DIR``), preprocessed exactly like requests. Every
fifth image (in name order) is held out: after quantizing on the others, the INT8 model's
top-1 is compared with fp32 on the held-out images, and a model that agrees less often than
``min_agreement`` is refused with :class:`~model.errors.Int8AgreementError`. The quantized IR
and its fidelity report are cached beside the ONNX export, keyed by the calibration set's
content, so a restart neither quantizes nor measures again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.compile import CompiledModel, prepare
from model.errors import CalibrationError, ImageError, Int8AgreementError
from model.export_cache import onnx_file, read_json, write_json_atomic
from model.openvino_backend import OvRunner, ir_path, read_model, save_ir
from model.preprocess import preprocess

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MIN_IMAGES = 10
HOLDOUT_EVERY = 5
KEEP_F32 = ("ReduceMean", "ReduceL2", "Multiply", "Sigmoid")  # SA statistics and gate
NEEDS = (
    f"a folder of at least {MIN_IMAGES} representative images ({', '.join(IMAGE_SUFFIXES)}; "
    "a few hundred like the ones you serve is better)"
)


@dataclass
class Int8Report:
    """Fidelity of an INT8 model against fp32 on held-out calibration images."""

    agreement: float
    max_prob_diff: float
    held_out: int
    calibration_images: int
    calibration_sha256: str
    min_agreement: float = 0.0
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_files(folder: str | Path | None, purpose: str = "INT8") -> list[Path]:
    """The images in ``folder`` (name order); :class:`CalibrationError` if unusable."""
    if folder is None:
        raise CalibrationError(
            f"{purpose} needs calibration images: set SANET_CALIBRATION_DIR (or pass "
            f"--calibration) to {NEEDS}"
        )
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise CalibrationError(f"calibration folder {path} is not a directory; give {NEEDS}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < MIN_IMAGES:
        raise CalibrationError(f"calibration folder {path} has {len(files)} images; give {NEEDS}")
    return files


def split(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(calibration, held-out): every ``HOLDOUT_EVERY``-th file is held out."""
    held = [f for i, f in enumerate(files) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    return [f for f in files if f not in held], held


def files_sha256(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def load_inputs(files: Sequence[Path]) -> list[np.ndarray]:
    """Each file preprocessed like a request, as a (1, 3, 224, 224) float32 array."""
    out = []
    for f in files:
        try:
            out.append(preprocess(f.read_bytes()).unsqueeze(0).numpy())
        except ImageError as exc:
            raise CalibrationError(f"calibration image {f} cannot be used: {exc}") from exc
    return out


def quantize_ir(onnx: Path, inputs: Sequence[np.ndarray], ignored: Sequence[str] = KEEP_F32) -> Any:
    """NNCF post-training quantization of the exported graph (symmetric INT8).

    Ops of the ``ignored`` types get no quantizers on their inputs, so SA's statistics and
    gate read the f32 output of conv3 directly (no quantize/dequantize pass per block).
    """
    import nncf

    return nncf.quantize(
        read_model(onnx),
        nncf.Dataset(list(inputs)),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(inputs),
        fast_bias_correction=True,
        ignored_scope=nncf.IgnoredScope(types=list(ignored), validate=False),
    )


def fidelity(
    reference: Callable[[torch.Tensor], torch.Tensor],
    candidate: Callable[[torch.Tensor], torch.Tensor],
    inputs: Sequence[np.ndarray],
) -> tuple[float, float]:
    """(top-1 agreement, max |probability difference|) of ``candidate`` vs ``reference``."""
    batch = torch.from_numpy(np.concatenate(list(inputs)))
    with torch.inference_mode():
        ref = torch.softmax(reference(batch).float(), dim=1)
        got = torch.softmax(candidate(batch).float(), dim=1)
    agreement = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    return agreement, (ref - got).abs().max().item()


def _quantize_and_measure(module: nn.Module, onnx: Path, files: list[Path], ir: Path) -> Int8Report:
    calib, held = split(files)
    log.info("int8: quantizing on %d images, %d held out", len(calib), len(held))
    save_ir(quantize_ir(onnx, load_inputs(calib)), ir)
    agreement, max_diff = fidelity(module, OvRunner(ir, None, None), load_inputs(held))
    return Int8Report(agreement, max_diff, len(held), len(calib), files_sha256(files))


def int8_engine(
    net: nn.Module,
    *,
    calibration_dir: str | Path | None,
    min_agreement: float = 0.99,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
) -> tuple[CompiledModel, Int8Report]:
    """The INT8 OpenVINO model of ``net`` and its fidelity report (cached with a cache dir)."""
    files = calibration_files(calibration_dir)  # refuse before any expensive work
    module = prepare(net, fold=True)
    tag = "int8-" + files_sha256(files)[:16]
    with onnx_file(module, cache_dir, cache_key) as onnx:
        ir = ir_path(onnx, tag)
        saved = read_json(ir.with_suffix(".json")) if ir.is_file() else None
        if isinstance(saved, dict):
            report = Int8Report(**saved)
            log.info("int8: reusing %s", ir)
        else:
            report = _quantize_and_measure(module, onnx, files, ir)
            write_json_atomic(ir.with_suffix(".json"), report.as_dict())
        report.min_agreement, report.path = min_agreement, str(ir) if cache_dir else None
        log.info(
            "int8: top-1 agreement %.4f on %d held-out images, max prob diff %.4f",
            report.agreement,
            report.held_out,
            report.max_prob_diff,
        )
        if min_agreement > 0 and report.agreement < min_agreement:
            raise Int8AgreementError(report.agreement, min_agreement, report.held_out)
        runner = OvRunner(ir, threads, cache_dir if cache_key else None)
    fc = getattr(net, "fc", None)
    num_classes = int(fc.out_features) if isinstance(fc, nn.Linear) else -1
    return CompiledModel(runner, "openvino", "cpu", "int8", True, num_classes), report
