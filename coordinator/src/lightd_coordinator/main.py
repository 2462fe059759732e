"""Build the FastAPI app: routers, middleware, and a lifespan that runs the background tasks."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lightd_coordinator import __version__
from lightd_coordinator.activity.middleware import ActivityMiddleware
from lightd_coordinator.api import openapi
from lightd_coordinator.api.dispatch_fastpath import DispatchFastPath
from lightd_coordinator.api.errors import registry_unavailable, validation_body
from lightd_coordinator.api.fastpath import HeartbeatFastPath
from lightd_coordinator.api.registration_fastpath import RegistrationFastPath
from lightd_coordinator.api.routes import (
    activity,
    auth,
    backups,
    commands,
    console,
    containers,
    docs,
    events,
    files,
    history,
    monitoring,
    nodes,
    quota,
    remote,
    schedule_events,
    schedules,
    services,
    ui,
)
from lightd_coordinator.config import Settings
from lightd_coordinator.core import Coordinator
from lightd_coordinator.dispatch import IdempotencyKeyReused
from lightd_coordinator.origins import OriginCORSMiddleware
from lightd_coordinator.registry import Registry, RegistryUnavailable
from lightd_coordinator.registry.base import NodeChanged
from lightd_coordinator.security import NodeTokenSigner
from lightd_coordinator.timeouts import TimeoutMiddleware
from lightd_shared.bodylimit import BodyLimitMiddleware
from lightd_shared.ratelimit import FailedAuthLimit
from lightd_shared.routing import method_not_allowed
from lightd_shared.wire import safe_text

__all__ = ["create_app"]

log = logging.getLogger(__name__)

DESCRIPTION = """\
The lightd coordination server: node registry, command dispatch to agents, service discovery
and live events (Server-Sent Events). With `auth.enabled`, every endpoint but `/health` needs
`Authorization: Bearer <token>` (the server token or a JWT from `POST /api/v1/auth/token`).
"""


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= 200
    return value is None or isinstance(value, bool | int)


def safe_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as JSON: ``loc``, ``msg``, ``type``; the input only when it is short.

    FastAPI's own handler echoes every input, which fails on values such as ``1e999`` (a 500)
    and copies whole bodies into answers and logs.
    """
    safe = []
    for error in errors:
        item: dict[str, Any] = {
            "loc": [p if isinstance(p, int) else safe_text(str(p)) for p in error.get("loc", ())],
            "msg": safe_text(str(error.get("msg", "invalid"))),
            "type": str(error.get("type", "value_error")),
        }
        value = error.get("input")
        if _scalar(value):
            item["input"] = safe_text(value) if isinstance(value, str) else value
        safe.append(item)
    return safe


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    signer: NodeTokenSigner | None = None,
) -> FastAPI:
    """The coordinator as an ASGI app; nothing starts until the lifespan runs."""
    settings = settings or Settings()
    coordinator = Coordinator(settings, registry=registry, signer=signer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await coordinator.start()
        try:
            yield
        finally:
            await coordinator.stop()
            log.info("coordinator stopped")

    app = FastAPI(
        title="lightd coordinator",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # served by api/routes/docs.py instead, behind the same auth as the API
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.coordinator = coordinator
    openapi.install(app, events_path=settings.websocket.path)

    app.include_router(monitoring.router)
    app.include_router(auth.router)
    app.include_router(nodes.router)
    app.include_router(containers.router)
    app.include_router(backups.router)
    app.include_router(quota.router)
    app.include_router(console.router)
    app.include_router(remote.router)
    app.include_router(commands.router)
    app.include_router(services.router)
    app.include_router(docs.router)
    app.include_router(history.router)
    app.include_router(ui.router)
    app.include_router(activity.router)
    app.include_router(schedules.router)
    app.include_router(schedule_events.router)
    app.include_router(files.router)
    if settings.websocket.enabled:
        app.include_router(events.build_router(settings.websocket.path))

    # innermost: records each mutating call once the route answered (activity/middleware.py)
    app.add_middleware(ActivityMiddleware, coordinator=coordinator)
    # innermost but the activity log: the timeouts and CORS below apply to it as to every route
    app.add_middleware(HeartbeatFastPath, coordinator=coordinator)
    # the same place: it writes a registration's activity entry itself, as the route's would be
    app.add_middleware(RegistrationFastPath, coordinator=coordinator)
    # and a command's dispatch: its activity entries, and the request's note its command reads
    app.add_middleware(DispatchFastPath, coordinator=coordinator)
    app.add_middleware(
        TimeoutMiddleware,
        read_timeout=settings.server.read_timeout.total_seconds(),
        write_timeout=settings.server.write_timeout.total_seconds(),
        exempt={settings.websocket.path},
    )
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.server.max_body_size, exempt=files.is_upload
    )
    # before anything but CORS (whose headers a browser needs to read even a 429)
    app.add_middleware(FailedAuthLimit, settings=settings.server.rate_limit)
    origins = settings.websocket.origins
    app.add_middleware(
        OriginCORSMiddleware,
        origins=origins,
        allow_credentials="*" not in origins,
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key"],
        expose_headers=["Retry-After"],
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)

    app.add_exception_handler(405, method_not_allowed)

    @app.exception_handler(IdempotencyKeyReused)
    async def key_reused(request: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        body = validation_body(["header", "Idempotency-Key"], str(exc))
        return JSONResponse(body, status_code=422)

    @app.exception_handler(RegistryUnavailable)
    async def registry_down(request: Request, exc: RegistryUnavailable) -> JSONResponse:
        log.warning("%s %s answered 503: %s", request.method, request.url.path, exc)
        return registry_unavailable(exc)

    @app.exception_handler(NodeChanged)
    async def node_changed(request: Request, exc: NodeChanged) -> JSONResponse:
        return JSONResponse(
            {"detail": f"conflict: {exc}"}, status_code=409, headers={"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error; the coordinator logged the details"}, status_code=500
        )

    return app
