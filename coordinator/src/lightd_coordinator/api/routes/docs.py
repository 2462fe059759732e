"""``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``: behind the same auth as the API.

FastAPI serves these three without any dependency; the coordinator turns them off
(``docs_url=None`` ...) and serves them here instead, so with ``auth.enabled`` they need a token
like every endpoint but ``/health`` (the schema maps the whole API, agent routes included).
With auth off they are open, as everything is.

A browser cannot put an ``Authorization`` header on a page load, so these paths (like the event
stream) also take ``?token=``; the HTML pages then fetch ``/openapi.json`` with the same token.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from lightd_coordinator.api.deps import DOCS_PATHS, require_auth

__all__ = ["router"]

OPENAPI_PATH, SWAGGER_PATH, REDOC_PATH = DOCS_PATHS

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])

TokenQuery = Annotated[str | None, Query(description="Bearer token, for browsers (masked in logs)")]


def _schema_url(token: str | None) -> str:
    # percent-encoded: the value lands inside a JavaScript string in the page
    return f"{OPENAPI_PATH}?token={quote(token, safe='')}" if token else OPENAPI_PATH


_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
"""A docs page may carry ``?token=`` in its URL and inside the page: never cached, and never
sent on as a ``Referer`` (the pages load their scripts from a CDN)."""


def _private(page: HTMLResponse) -> HTMLResponse:
    page.headers.update(_PRIVATE)
    return page


@router.get(OPENAPI_PATH)
async def openapi_schema(request: Request, token: TokenQuery = None) -> JSONResponse:
    """The OpenAPI document of the whole API."""
    del token  # read by require_auth
    return JSONResponse(request.app.openapi())


@router.get(SWAGGER_PATH)
async def swagger_ui(request: Request, token: TokenQuery = None) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``."""
    return _private(
        get_swagger_ui_html(
            openapi_url=_schema_url(token), title=f"{request.app.title} - Swagger UI"
        )
    )


@router.get(REDOC_PATH)
async def redoc(request: Request, token: TokenQuery = None) -> HTMLResponse:
    """ReDoc over ``/openapi.json``."""
    return _private(
        get_redoc_html(openapi_url=_schema_url(token), title=f"{request.app.title} - ReDoc")
    )
