"""What this CPU is: its model name and instruction-set flags, read from ``/proc/cpuinfo``.

One reader for every caller: the fused SA kernel's build flags, the ``auto`` decision's
fingerprint and the bf16 check. ``CPUINFO`` is a module attribute so a test can point it
at a file describing another CPU.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

from model.errors import Bf16UnsupportedError

CPUINFO = Path("/proc/cpuinfo")
#: either is enough for bf16 arithmetic in OpenVINO's CPU plugin (AVX-512 or AMX tiles)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_fields() -> dict[str, str]:
    """The first processor's ``key: value`` lines (empty where there is no cpuinfo)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in CPUINFO.read_text().splitlines():
            if not line.strip():
                break  # the first processor's block ends here; the others repeat it
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> set[str]:
    """The instruction-set flags the kernel reports for this CPU."""
    return set(cpu_fields().get("flags", "").split())


def cpu_model() -> str:
    return cpu_fields().get("model name") or platform.processor() or "unknown"


def has_bf16() -> bool:
    """True where the CPU runs bf16 arithmetic natively (AVX512_BF16 or AMX)."""
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def require_bf16_cpu() -> None:
    """Raise :class:`Bf16UnsupportedError`, naming the CPU, where it has no native bf16."""
    if not has_bf16():
        raise Bf16UnsupportedError(
            f"bf16 on cpu needs a CPU with AVX512_BF16 or AMX ({' or '.join(BF16_FLAGS)} in "
            f"/proc/cpuinfo); {cpu_model()} has neither: serve fp32 or int8 here"
        )
