"""The CUDA runner's bucketing, run on the CPU: the same class without pinning, streams or
graphs. A batch runs padded up to its bucket, and its rows are those of the unpadded batch.
"""

from __future__ import annotations

import pytest
import torch

from model import fold_model
from model.compile import CompiledModel, HostFeed
from model.cuda import CudaRunner, bucket_for, buckets
from model.preprocess import normalize
from service.engine.loading import feed, warm_sizes
from testing.checkpoints import random_net


@pytest.fixture(scope="module")
def folded() -> torch.nn.Module:
    net = random_net("sanet_tiny", seed=3)
    fc = net.fc
    assert isinstance(fc, torch.nn.Linear)
    with torch.no_grad():
        fc.weight.mul_(40.0)  # probabilities that differ between the crops
    return fold_model(net).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (7, 224, 224, 3), dtype=torch.uint8, generator=gen)


def test_buckets() -> None:
    assert buckets(128) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert buckets(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert buckets(1) == [1]
    sizes = buckets(128)
    assert [bucket_for(n, sizes) for n in (1, 2, 3, 5, 64, 65, 128)] == [1, 2, 4, 8, 64, 128, 128]
    with pytest.raises(ValueError):
        bucket_for(129, sizes)


def test_padded_batch_gives_the_unpadded_logits(
    folded: torch.nn.Module, crops: torch.Tensor
) -> None:
    """What the pad rows hold changes nothing in the real rows (bit for bit), and the real
    rows are the unpadded batch's within fp32 rounding: a batch of 3 and a batch of 4 may
    take differently blocked convolution kernels (measured here: 1.3e-5 on logits of scale
    36, 4e-7 of it; the bound, 1e-5 of the scale, leaves 25x headroom)."""
    runner = CudaRunner(folded, torch.float32, max_batch=8, device="cpu")
    with torch.inference_mode():
        for n in (3, 5, 1):  # buckets 4, 8, 1
            runner(crops.flip(0)[:7])  # other crops in the rows this batch is padded with
            first = runner(crops[:n])
            runner(torch.zeros_like(crops[:7]))
            assert torch.equal(runner(crops[:n]), first)
            unpadded = folded(normalize(crops[:n]))
            assert first.shape == unpadded.shape
            scale = unpadded.abs().max().item()
            assert (first - unpadded).abs().max().item() <= 1e-5 * scale
            assert torch.equal(first.argmax(1), unpadded.argmax(1))
    assert {(1, torch.uint8), (4, torch.uint8), (8, torch.uint8)} == runner.captured


def test_probabilities_of_the_gather_buffer(folded: torch.nn.Module, crops: torch.Tensor) -> None:
    """The engine's path: crops gathered into the runner's one buffer, the softmax computed
    with the logits, probabilities out."""
    runner = CudaRunner(folded, torch.float32, max_batch=8, device="cpu")
    runner.buffer[:6] = crops[:6].numpy()
    probs = runner.probabilities(6)
    with torch.inference_mode():
        expected = torch.softmax(folded(normalize(crops[:6])), dim=1)
    assert probs.shape == (6, expected.shape[1]) and probs.dtype == torch.float32
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(probs[0], probs[1])  # the rows are the crops', in order
    assert runner.captured == {(8, torch.uint8)}


def test_float_input_and_batches_beyond_the_largest_bucket(folded: torch.nn.Module) -> None:
    runner = CudaRunner(folded, torch.float32, max_batch=4, device="cpu")
    x = torch.randn(6, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(runner(x), folded(x), rtol=1e-5, atol=1e-5)
    assert runner.captured == {(4, torch.float32), (2, torch.float32)}


def test_the_engine_gathers_into_the_runner(folded: torch.nn.Module) -> None:
    runner = CudaRunner(folded, torch.float32, max_batch=8, device="cpu")
    compiled = CompiledModel(runner, "eager", "cuda", "fp32", True, 1000, run_uint8=runner)
    assert feed(compiled, 8) is runner and feed(compiled, 4) is runner
    assert isinstance(feed(compiled, 16), HostFeed)  # larger than the runner's buffer
    assert isinstance(feed(lambda b: torch.zeros(b.shape[0], 3), 2), HostFeed)
    assert warm_sizes("torchscript", "cuda", 128) == [128, 64, 32, 16, 8, 4, 2, 1]
