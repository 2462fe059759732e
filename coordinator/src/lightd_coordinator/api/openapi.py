"""The coordinator's OpenAPI document with every status code it answers.

:func:`install` wraps ``app.openapi`` so the document served at ``/openapi.json`` (and read by
schemathesis in CI) lists the errors the auth, the body limit, the read timeout and each route
answer, by the rules of :func:`lightd_shared.openapi.document_errors`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lightd_shared.openapi import document_errors

__all__ = ["install"]


def _extra(events_path: str) -> dict[str, list[int]]:
    operator = [403]  # the agent token on an operator route, or a node's missing proof
    return {
        "GET /health": [503],
        "/metrics": operator,
        "/api/v1/nodes": operator,
        "/api/v1/commands": operator,
        "/api/v1/services": operator,
        "/api/v1/remote": operator,
        events_path: operator,
        "POST /api/v1/nodes": [409],
        "POST /api/v1/commands/{command_id}/result": [400, 409],
        "/api/v1/activity": operator,
    }


def install(app: FastAPI, *, events_path: str) -> None:
    """Make ``app.openapi()`` answer the completed document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                build(),
                public=("/health",),
                protected=(401,),
                with_body=(400, 408, 413, 422),
                extra=_extra(events_path),
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
