"""bf16 on CPU: OpenVINO's bf16 inference precision, and its fidelity gate.

The CPU must compute bf16 natively (AVX512_BF16 or AMX, :func:`model.cpu.require_bf16_cpu`);
elsewhere the plugin would emulate it slower than f32, so the service refuses to start.
bf16 keeps 8 bits of mantissa, so the engine's logits differ from fp32's; before serving, the
compiled model and the fp32 network classify every calibration image (``SANET_CALIBRATION_DIR``,
preprocessed like requests), and a model whose top-1 agrees with fp32 less often than
``min_agreement`` is refused with :class:`~model.errors.Bf16AgreementError`. Nothing is fitted
to the images, so all of them are measured (INT8 holds some out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.errors import Bf16AgreementError
from model.quantize import calibration_files, fidelity, files_sha256, load_inputs

log = logging.getLogger(__name__)

DEFAULT_MIN_AGREEMENT = 0.99
CHUNK = 16  # images per fidelity batch
PURPOSE = "the bf16 fidelity gate (SANET_BF16_MIN_AGREEMENT=0 turns it off)"


@dataclass
class Bf16Report:
    """Fidelity of the bf16 model against fp32 (None where the gate was off and no images
    were given)."""

    agreement: float | None
    max_prob_diff: float | None
    images: int
    calibration_sha256: str | None
    min_agreement: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bf16_gate(
    reference: nn.Module,
    candidate: Callable[[torch.Tensor], torch.Tensor],
    *,
    calibration_dir: str | Path | None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> Bf16Report:
    """Measure ``candidate`` (the bf16 engine) against the fp32 ``reference`` on the
    calibration images and refuse it below ``min_agreement`` (0: no images needed, none
    measured unless given)."""
    if min_agreement <= 0 and calibration_dir is None:
        log.warning("bf16: fidelity gate off (SANET_BF16_MIN_AGREEMENT=0), nothing measured")
        return Bf16Report(None, None, 0, None, min_agreement)
    files = calibration_files(calibration_dir, PURPOSE)
    inputs, agree, max_diff = load_inputs(files), 0.0, 0.0
    for i in range(0, len(inputs), CHUNK):  # bounded memory for a large folder
        part = inputs[i : i + CHUNK]
        share, diff = fidelity(reference.eval(), candidate, part)
        agree, max_diff = agree + share * len(part), max(max_diff, diff)
    agreement = agree / len(inputs)
    report = Bf16Report(agreement, max_diff, len(files), files_sha256(files), min_agreement)
    log.info(
        "bf16: top-1 agreement %.4f on %d calibration images, max prob diff %.4f",
        agreement,
        len(files),
        max_diff,
    )
    if min_agreement > 0 and agreement < min_agreement:
        raise Bf16AgreementError(agreement, min_agreement, len(files))
    return report
