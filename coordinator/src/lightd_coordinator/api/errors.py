"""The coordinator's own ``422`` bodies, in FastAPI's shape, built in one place.

A check FastAPI cannot express (a ``key=value`` query, an event id, a reused
``Idempotency-Key``) answers exactly as a failed validation does::

    {"detail": [{"loc": ["query", "label"], "msg": "...", "type": "value_error"}]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse

__all__ = ["invalid", "registry_unavailable", "validation_body"]


def validation_body(loc: Sequence[str | int], message: str) -> dict[str, Any]:
    """The body of a ``422`` naming ``loc`` (``["query", "label"]``) and saying why."""
    return {"detail": [{"loc": list(loc), "msg": message, "type": "value_error"}]}


def invalid(loc: Sequence[str | int], message: str) -> HTTPException:
    """A ``422`` to raise from a route: ``raise invalid(["query", "label"], "...")``."""
    return HTTPException(
        status_code=422,
        detail=validation_body(loc, message)["detail"],
    )


def registry_unavailable(exc: Exception) -> JSONResponse:
    """The ``503`` of a registry that cannot be reached (never a 500): try again in a second."""
    return JSONResponse(
        {"detail": f"service unavailable: {exc}; try again shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
