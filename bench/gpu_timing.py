"""What bench/gpu_model.py times: the networks per route, and the timers (CUDA events with a
captured graph on a GPU, perf_counter on CPU for the dry run)."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from model import create_model, fold_model
from testing.checkpoints import randomize_

Forward = Callable[[torch.Tensor], torch.Tensor]
#: route -> what it is, as the table names it
ROUTES = {
    "resnet": "ResNet-50 (folded, no SA), eager",
    "eager": "SANet-50 folded, eager SA ops",
    "triton": "SANet-50 folded, Triton SA kernels",
    "authors": "SANet-50 authors' graph (unfolded), eager",
    "inductor": "SANet-50 folded, torch.compile (inductor)",  # last: its compiles take longest
}


def networks(arch: str, seed: int = 0) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(authors' eval-mode SANet, its folded form, the folded same network without SA)."""
    torch.manual_seed(seed)
    net = randomize_(create_model(arch), seed)
    plain = randomize_(create_model(arch, use_sa=False), seed)
    return net, fold_model(net), fold_model(plain)  # type: ignore[arg-type]


def build_route(
    route: str, nets: tuple[nn.Module, nn.Module, nn.Module], device: str, dtype: torch.dtype
) -> Forward:
    """The network of ``route`` on ``device`` in ``dtype`` (channels_last on CUDA)."""
    authors, folded, plain = nets
    source = {"authors": authors, "resnet": plain}.get(route, folded)
    module = copy.deepcopy(source).eval().to(device, dtype)
    if device == "cuda":
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if route == "triton":
        from model.triton_sa import use_triton_sa

        use_triton_sa(module)
    if route == "inductor":
        return torch.compile(module, fullgraph=True)
    return module


def cuda_ms(fn: Forward, x: torch.Tensor, iters: int, warmup: int) -> float:
    """Median ms of one replay of ``fn(x)`` captured in a CUDA graph, by CUDA events."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(x)
    return events_ms(graph.replay, iters)


def events_ms(run: Callable[[], object], iters: int) -> float:
    """Median ms of ``run()`` on the current stream, by CUDA events."""
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cpu_ms(fn: Forward, x: torch.Tensor, iters: int, warmup: int) -> float:
    """Median ms of ``fn(x)`` on CPU (the dry run's timer)."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def h2d_ms(batch: int, iters: int) -> dict[str, float]:
    """Host-to-device copy of one batch from pinned memory: float32 NCHW against uint8 NHWC,
    and each with its conversion to the fp16 channels_last network input."""
    from model.uint8_input import normalize_nhwc, scale_shift

    f32 = torch.randn(batch, 3, 224, 224).pin_memory()
    u8 = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8).pin_memory()
    scale, shift = scale_shift("cuda")
    fmt = torch.channels_last

    def float_in() -> object:
        return f32.to("cuda", non_blocking=True).to(torch.float16, memory_format=fmt)

    def uint8_in() -> object:
        x = normalize_nhwc(u8.to("cuda", non_blocking=True), scale, shift, True)
        return x.to(torch.float16)

    for fn in (float_in, uint8_in):
        fn()
    return {
        "float32_copy_ms": events_ms(lambda: f32.to("cuda", non_blocking=True), iters),
        "uint8_copy_ms": events_ms(lambda: u8.to("cuda", non_blocking=True), iters),
        "float32_to_input_ms": events_ms(float_in, iters),
        "uint8_to_input_ms": events_ms(uint8_in, iters),
    }
