"""TorchScript helpers shared by the CPU and CUDA compile paths (no other model imports)."""

from __future__ import annotations

import torch
from torch import nn


def script_module(module: nn.Module) -> torch.jit.ScriptModule:
    """Script and freeze: weights become constants, the graph is optimised for inference."""
    return torch.jit.freeze(torch.jit.script(module.eval()))
