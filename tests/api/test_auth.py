"""Optional API keys: Bearer or X-API-Key; health and metrics stay open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testing.app import Running
from testing.images import image_bytes

KEYS = "k-one,k-two"


@pytest.fixture(scope="module")
def secured(serve: Callable[..., Any]) -> Iterator[Running]:
    with serve(api_keys=KEYS) as running:
        yield running


def _classify(running: Running, headers: dict[str, str]) -> int:
    r = running.client.post(
        "/classify", content=image_bytes(0), headers={"Content-Type": "image/jpeg", **headers}
    )
    return r.status_code


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer k-one"},
        {"Authorization": "bearer k-two"},
        {"X-API-Key": "k-two"},
    ],
)
def test_valid_keys(secured: Running, headers: dict[str, str]) -> None:
    assert _classify(secured, headers) == 200
    assert secured.client.get("/v1/models", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic k-one"},
        {"X-API-Key": "k-on"},
        {"Authorization": "Bearer"},
        {"X-API-Key": "k-one k-two"},
    ],
)
def test_missing_or_wrong_keys(secured: Running, headers: dict[str, str]) -> None:
    r = secured.client.post(
        "/classify", content=image_bytes(0), headers={"Content-Type": "image/jpeg", **headers}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert secured.client.get("/v1/models", headers=headers).status_code == 401


def test_health_and_metrics_stay_open(secured: Running) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert secured.client.get(path).status_code == 200
