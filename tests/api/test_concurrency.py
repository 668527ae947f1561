"""Under concurrent load every response carries its own image's result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import torch

from testing.app import Running
from testing.images import image_bytes
from testing.v2 import classify_vector

N_IMAGES = 24


def _classify(url: str, data: bytes) -> torch.Tensor:
    with httpx.Client(base_url=url, timeout=60) as client:
        return torch.from_numpy(classify_vector(client, data)).double()


def test_concurrent_answers_match_single_runs(api: Running) -> None:
    images = [image_bytes(i) for i in range(N_IMAGES)]
    reference = torch.stack([_classify(api.url, b) for b in images])
    batches_before = api.metric("sanet_batch_size_count", model="sanet_tiny")
    order = [i % N_IMAGES for i in range(3 * N_IMAGES)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(lambda i: _classify(api.url, images[i]), order))
    batches = api.metric("sanet_batch_size_count", model="sanet_tiny") - batches_before
    assert batches < len(order)  # requests really were batched together
    for i, vec in zip(order, got, strict=True):
        dist = (reference - vec).abs().max(dim=1).values
        assert int(dist.argmin()) == i  # nearest to its own image, not a neighbour's
        assert float(dist[i]) < 1e-4
        assert float(dist.sort().values[1]) > 100 * float(dist[i]) + 1e-3
