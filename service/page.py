"""``GET /``: a self-contained page to try the service (no external assets; README)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@cache
def _page() -> str:
    return resources.files("service").joinpath("static/index.html").read_text("utf-8")


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    """Choose or drop images, pick the model and top_k, see the predictions as bars."""
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})
