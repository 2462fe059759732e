"""How the API answers errors, and the one place every refusal is logged.

Every ``503`` (Docker unreachable, a lifecycle gate refusing) and ``504`` (Docker did not
answer in time) the agent answers is logged at ``warning`` with its reason and the server the
request was for, so a refused action is explained by the agent's log alone::

    answered 503 to POST /containers/s12/start (server s12): lifecycle actions are refused ...

Both the agent's own errors (:class:`~lightd_agent.errors.AgentError`) and HTTP exceptions
(``HTTPException(503)`` of the ``/remote`` routes) pass through here; the JSON line carries
``status_code``, ``server``, ``method``, ``path`` and ``reason`` as fields.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from lightd_agent.errors import AgentError

__all__ = ["LOGGED_STATUSES", "agent_error_handler", "http_error_handler", "log_refusal"]

log = logging.getLogger("lightd_agent.api")

LOGGED_STATUSES = frozenset({503, 504})


def _server_of(request: Request, named: str | None) -> str | None:
    if named:
        return named
    server = request.path_params.get("server_id")
    return str(server) if server is not None else None


def log_refusal(request: Request, status: int, reason: str, server: str | None) -> None:
    """The warning line of one refused (503) or timed-out (504) request."""
    fields: dict[str, str | int] = {
        "status_code": status,
        "method": request.method,
        "path": request.url.path,
        "reason": reason,
    }
    if server is not None:
        fields["server"] = server
    log.warning(
        "answered %d to %s %s (server %s): %s",
        status,
        request.method,
        request.url.path,
        server or "-",
        reason,
        extra=fields,
    )


async def agent_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """``{"detail": message}`` with the error's status; 503 and 504 are logged."""
    assert isinstance(exc, AgentError)
    if exc.status in LOGGED_STATUSES:
        log_refusal(request, exc.status, exc.message, _server_of(request, exc.server))
    return JSONResponse(status_code=exc.status, content={"detail": exc.message})


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer to an ``HTTPException``; 503 and 504 are logged first."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in LOGGED_STATUSES:
        log_refusal(request, exc.status_code, str(exc.detail), _server_of(request, None))
    return await http_exception_handler(request, exc)
