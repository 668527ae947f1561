"""A stand-in of sanet-serve for testing the load generator (bench.http.load).

The unit under test is the generator, so this small FastAPI app only speaks the service's
contract: it parses every body (raw JPEG, multipart ``file`` parts, base64 JSON), answers 400
to a malformed one, 503 to every ``fail_every``-th request, and exports a ``sanet_batch_size``
histogram (one observation per successful request). Run as a module
(``python -m testing.standin``) it serves on ``SANET_HOST``/``SANET_PORT``, which is
how the ``--spawn`` path is tested.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from testing.servers import InThread

JPEG_MAGIC = b"\xff\xd8\xff"


class StandIn:
    """What the stand-in received, and how it misbehaves."""

    def __init__(self, fail_every: int = 0, delay_s: float = 0.0) -> None:
        self.fail_every, self.delay_s = fail_every, delay_s
        self.requests: Counter[str] = Counter()  # body kind -> requests parsed
        self.images: Counter[str] = Counter()  # body kind -> images parsed
        self.statuses: Counter[int] = Counter()
        self.registry = CollectorRegistry()
        self.batch = Histogram(
            "sanet_batch_size",
            "Images per batch.",
            ["model"],
            buckets=(1, 2, 4, 8),
            registry=self.registry,
        )
        self.batch.labels(model="other").observe(3)  # another model: must be ignored


async def parse_body(request: Request) -> tuple[str, list[bytes]]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("image/"):
        return "raw", [await request.body()]
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        return "multipart", [await part.read() for part in form.getlist("file")]  # type: ignore[union-attr]
    doc = json.loads(await request.body())
    return "base64", [base64.b64decode(item, validate=True) for item in doc["images"]]


def make_app(state: StandIn) -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.registry), media_type="text/plain")

    @app.post("/classify")
    async def classify(request: Request, model: str = "sanet50", top_k: int = 5) -> Response:
        try:
            kind, images = await parse_body(request)
            assert images and all(data.startswith(JPEG_MAGIC) for data in images)
        except Exception:
            state.statuses[400] += 1
            return JSONResponse({"error": {"code": "bad_body", "message": "x"}}, 400)
        state.requests[kind] += 1
        state.images[kind] += len(images)
        if state.fail_every and sum(state.requests.values()) % state.fail_every == 0:
            state.statuses[503] += 1
            error = {"error": {"code": "overloaded", "message": "queue full"}}
            return JSONResponse(error, 503, headers={"Retry-After": "1"})
        await asyncio.sleep(state.delay_s)
        state.batch.labels(model=model).observe(len(images))
        state.statuses[200] += 1
        pred = {"class_index": 1, "label": "goldfish", "probability": 0.9}
        results = [{"predictions": [pred] * top_k} for _ in images]
        return JSONResponse({"model": model, "results": results, "timing_ms": {"total": 1.0}})

    return app


@contextmanager
def serving(state: StandIn) -> Iterator[str]:
    """The stand-in under uvicorn on a free 127.0.0.1 port, in a background thread."""
    with InThread(make_app(state)) as server:
        yield server.url


if __name__ == "__main__":
    stand_in = StandIn(fail_every=int(os.environ.get("STANDIN_FAIL_EVERY", "0")))
    uvicorn.run(
        make_app(stand_in),
        host=os.environ["SANET_HOST"],
        port=int(os.environ["SANET_PORT"]),
        log_level="warning",
    )
