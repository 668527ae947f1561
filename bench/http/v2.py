"""KServe v2 request bodies and a gRPC sender for ``bench.http.load`` (``--body v2_http v2_grpc``).

v2 HTTP bodies use the binary tensor extension (a JSON header, then the images as one BYTES
tensor), as tritonclient sends them; gRPC calls go through grpc.aio with the KServe v2
messages from tritonclient, one channel shared by every worker.
"""

from __future__ import annotations

import itertools
import json
import struct
import time
from collections.abc import Sequence
from typing import Any

import grpc
import httpx
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from bench.http.report import Tally


def binary_bytes_tensor(images: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in images)


def http_body(images: Sequence[bytes]) -> tuple[bytes, dict[str, str]]:
    """A v2 infer body (IMAGE as binary data, PROBABILITIES top-5 back) and its headers."""
    raw = binary_bytes_tensor(images)
    head = {
        "inputs": [
            {
                "name": "IMAGE",
                "datatype": "BYTES",
                "shape": [len(images)],
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": "PROBABILITIES", "parameters": {"classification": 5}}],
    }
    header = json.dumps(head).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + raw, headers


def grpc_request(model: str, images: Sequence[bytes], top_k: int) -> Any:
    return pb.ModelInferRequest(
        model_name=model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="IMAGE", datatype="BYTES", shape=[len(images)]
            )
        ],
        raw_input_contents=[binary_bytes_tensor(images)],
        outputs=[
            pb.ModelInferRequest.InferRequestedOutputTensor(
                name="PROBABILITIES",
                parameters={"classification": pb.InferParameter(int64_param=top_k)},
            )
        ],
    )


class GrpcSender:
    """``bench.http.load.Sender``'s interface over gRPC; ``client`` (httpx) scrapes /metrics."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: str,
        requests: list[tuple[Any, int]],
        timeout: float,
        api_key: str | None = None,
    ) -> None:
        self.client, self.timeout = client, timeout
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.metadata = [("x-api-key", api_key)] if api_key else None
        self._requests = itertools.cycle(requests)

    async def one(self, tally: Tally) -> None:
        request, images = next(self._requests)
        tally.sent += 1
        start = time.perf_counter()
        try:
            await self.stub.ModelInfer(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            tally.outcomes[exc.code().name] += 1
            return
        except (TimeoutError, OSError) as exc:
            tally.outcomes[type(exc).__name__] += 1
            return
        tally.outcomes["200"] += 1
        tally.latencies_ms.append(1000 * (time.perf_counter() - start))
        tally.ok_images += images

    async def close(self) -> None:
        await self.channel.close()
