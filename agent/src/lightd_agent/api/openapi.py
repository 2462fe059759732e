"""The agent's OpenAPI document with every status code it answers, and its one 422 shape.

Every 422 of the agent is ``{"detail": "<what is wrong, in words>", "errors": [{"loc", "msg",
"type"}, ...]}``: ``detail`` is one readable line (what people and ``lightd`` print), ``errors``
the problems one by one (what programs read). FastAPI's default document says ``detail`` is an
array; :func:`install` documents the real shape (:data:`VALIDATION_SCHEMA`) and the errors the
auth, the body limit and each route answer, by the rules of
:func:`lightd_shared.openapi.document_errors`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lightd_shared.openapi import document_errors

__all__ = ["VALIDATION_NAME", "VALIDATION_SCHEMA", "install"]

VALIDATION_NAME = "AgentValidationError"
VALIDATION_SCHEMA: dict[str, Any] = {
    "title": VALIDATION_NAME,
    "type": "object",
    "description": "A refused value: `detail` in words, `errors` one by one",
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {
            "type": "array",
            "title": "Errors",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        },
    },
    "required": ["detail"],
}

_LIFECYCLE = [403, 409]  # a policy refusal; a state or port that does not allow it

EXTRA: dict[str, list[int]] = {
    # Docker refused (502), unreachable or the gate closed (503: outbox full), too slow (504)
    "/containers": [502, 503, 504],
    "POST /containers": _LIFECYCLE,
    "POST /containers/{server_id}/start": _LIFECYCLE,
    "POST /containers/{server_id}/stop": _LIFECYCLE,
    "POST /containers/{server_id}/restart": _LIFECYCLE,
    "POST /containers/{server_id}/kill": _LIFECYCLE,
    "POST /containers/{server_id}/reinstall": _LIFECYCLE,
    "DELETE /containers/{server_id}": [409],
    "POST /containers/{server_id}/exec": [409],
    # no container yet (installing, failed), or Docker's: dead or being removed
    "GET /containers/{server_id}/logs": [409],
    "GET /containers/{server_id}/stats": [409],
    "/remote": [503],  # remote sync is not running
    "POST /remote/config/reload": [409, 422],
    "POST /remote/config/pull": [409, 502],
    "POST /remote/config/push": [409, 502],
    "POST /commands": [403, 409, 503],
    # disk quota: no limits.disk, the image not mounted, a state or data that refuses a resize
    "/volumes": [409],
    "POST /volumes/{server_id}/resize": [503],
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` answer the completed document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document["components"]["schemas"].pop("HTTPValidationError", None)
            document["components"]["schemas"].pop("ValidationError", None)
            app.openapi_schema = document_errors(
                document,
                extra=EXTRA,
                validation_schema=VALIDATION_SCHEMA,
                validation_name=VALIDATION_NAME,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
