"""``/ui/``: the operators' dashboard (static files, no token: they hold no data).

``/`` and ``/ui`` redirect to ``/ui/``. The page then calls the API with the operator's token,
which it keeps in the tab's ``sessionStorage`` only. A strict Content-Security-Policy keeps the
page to its own scripts and this origin.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

from lightd_coordinator.ui import ASSETS, asset

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_no_slash() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def index() -> Response:
    return _file("index.html")


@router.get("/ui/{name}")
async def static(name: str) -> Response:
    return _file(name)


def _file(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(status_code=404, detail=f"the dashboard has no file {name[:80]!r}")
    return Response(asset(name).read_bytes(), media_type=media, headers=_HEADERS)
