"""``GET /``: a self-contained page to try the service, and ``/redoc`` (docs/api.md).

Both come with a Content-Security-Policy that lets the browser fetch from this server only:
ReDoc's bundle shows a logo from its vendor's CDN, which an offline cluster cannot reach
and which would otherwise leak a request. Swagger UI (``/docs``) loads nothing foreign.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

router = APIRouter()

#: the path where fastapi-offline mounts its Swagger UI / ReDoc assets
OFFLINE_ASSETS = "/static-offline-docs"
SAME_ORIGIN_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; font-src 'self' data:; "
    "connect-src 'self'"
)


@cache
def _page() -> str:
    return resources.files("service.front").joinpath("static/index.html").read_text("utf-8")


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    """Choose or drop images, pick the model and top_k, see the predictions as bars."""
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": SAME_ORIGIN_ONLY}
    return HTMLResponse(_page(), headers=headers)


@router.get("/redoc", include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc from fastapi-offline's assets, held to this origin."""
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{OFFLINE_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{OFFLINE_ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
    return page
