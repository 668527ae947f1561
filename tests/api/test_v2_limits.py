"""KServe v2 front ends under the service's rules: API keys, Triton's ``timeout`` parameter,
size limits. Driven by the real tritonclient (HTTP and gRPC)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from testing.app import ARCH
from testing.ci import skip_or_fail
from testing.ports import free_port
from testing.v2 import image_input, photos

try:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
except ImportError:  # pragma: no cover - the dev extra installs it
    httpclient = None


@pytest.fixture(autouse=True)
def _clients() -> None:
    if httpclient is None:
        skip_or_fail("tritonclient[http,grpc] is not installed")


def test_api_keys_on_both_protocols(serve: Callable[..., Any]) -> None:
    with serve(api_keys="k1", grpc_port=free_port()) as running:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{running.port}")
        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{running.settings.grpc_port}")
        assert http.is_server_ready() and grpc.is_server_ready()  # health stays open
        with pytest.raises(InferenceServerException) as no_key:
            http.infer(ARCH, [image_input(httpclient, photos()[:1])])
        assert no_key.value.status() == "401"
        with pytest.raises(InferenceServerException) as no_key_grpc:
            grpc.infer(ARCH, [image_input(grpcclient, photos()[:1])])
        assert str(no_key_grpc.value.status()) == "StatusCode.UNAUTHENTICATED"
        ok = http.infer(ARCH, [image_input(httpclient, photos()[:1])], headers={"X-API-Key": "k1"})
        assert ok.as_numpy("PROBABILITIES").shape == (1, 1000)
        ok = grpc.infer(
            ARCH, [image_input(grpcclient, photos()[:1])], headers={"authorization": "Bearer k1"}
        )
        assert ok.as_numpy("PROBABILITIES").shape == (1, 1000)
        http.close()
        grpc.close()


def test_timeout_parameter_and_limits(serve: Callable[..., Any]) -> None:
    with serve() as running:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{running.port}")
        # tritonclient's async_infer needs gevent's loop: a thread sends the first request
        with ThreadPoolExecutor(1) as pool, running.engine_held() as hold:
            first = pool.submit(
                httpx.post,
                f"{running.url}/classify",
                content=photos()[0],
                headers={"Content-Type": "image/jpeg"},
                timeout=60,
            )
            running.wait_slots(1)
            with pytest.raises(InferenceServerException) as late:  # Triton's timeout, in us
                http.infer(ARCH, [image_input(httpclient, photos()[:1])], timeout=200_000)
            assert late.value.status() == "504"
            hold.release()
            assert first.result().status_code == 200
        limit = running.settings.max_images_per_request
        with pytest.raises(InferenceServerException) as many:
            http.infer(ARCH, [image_input(httpclient, photos()[:1] * (limit + 1))])
        assert many.value.status() == "413"
        with pytest.raises(InferenceServerException) as big:
            http.infer(ARCH, [image_input(httpclient, [b"x" * running.settings.max_body_bytes])])
        assert big.value.status() == "413"
        http.close()
