"""The fused SA kernel for CPU (``model/csrc/sa_fused.cpp``), built on first use.

One statistics pass and one elementwise pass per (sample, channel) plane, residual add and
ReLU included: what PyTorch's separate ops do in six passes. It is compiled with the
machine's C++ compiler through ``torch.utils.cpp_extension`` (cached under
``$TORCH_EXTENSIONS_DIR``, a few seconds the first time) and registers
``torch.ops.sanet.sa_fused``. Without a compiler the unfused ops run instead.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import torch

from model.cpu import cpuinfo

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "sa_fused.cpp"
BASE_FLAGS = ["-O3", "-fopenmp", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math"]


@cache
def load_fused_sa() -> bool:
    """Build (or reuse) and load the kernel; False, with one warning, when it cannot."""
    from torch.utils import cpp_extension

    simd = {"avx2", "fma"} <= cpuinfo()[1]
    name = "sanet_sa_avx2" if simd else "sanet_sa"  # one build per instruction set
    flags = [*BASE_FLAGS, "-mavx2", "-mfma"] if simd else BASE_FLAGS
    try:
        cpp_extension.load(
            name=name, sources=[str(SOURCE)], extra_cflags=flags, is_python_module=False
        )
    except Exception as exc:  # no compiler, no ninja, an odd platform: fall back
        log.warning("fused SA kernel unavailable (%s); using the unfused ops", exc)
        return False
    log.info("fused SA kernel loaded (%s)", name)
    return hasattr(torch.ops.sanet, "sa_fused")
