"""What every HTTP front end shares: the lifecycle, API-key auth, disconnect detection.

``/classify`` (``front/http/routes.py``) and KServe v2 over HTTP (``front/v2/http.py``) use
these as FastAPI dependencies; gRPC (``front/v2/grpc_server.py``) calls ``check_api_key``.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import Depends, Request

from service import errors
from service.front.state import Lifecycle


async def get_lifecycle(request: Request) -> Lifecycle:
    """The front end's lifecycle (async: FastAPI would run a plain function in a thread)."""
    life: Lifecycle = request.app.state.lifecycle
    return life


async def require_api_key(request: Request) -> None:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` when SANET_API_KEYS is set."""
    check_api_key(
        request.app.state.api_keys,
        request.headers.get("authorization", ""),
        request.headers.get("x-api-key"),
    )


def check_api_key(keys: list[bytes], authorization: str, x_api_key: str | None) -> None:
    """Raise ``Unauthorized`` unless a key is required and given (any front end)."""
    if not keys:
        return
    scheme, _, token = authorization.partition(" ")
    supplied = token.strip() if scheme.lower() == "bearer" else x_api_key
    if not supplied:
        raise errors.Unauthorized()
    given = supplied.encode()
    # compare against every key, so timing does not tell which prefix matched
    if not any([hmac.compare_digest(given, k) for k in keys]):
        raise errors.Unauthorized()


Life = Annotated[Lifecycle, Depends(get_lifecycle)]


async def disconnected(request: Request) -> None:
    """Returns once the client of ``request`` went away (its body already read)."""
    # After the body is read, the server's receive() only returns on disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)
