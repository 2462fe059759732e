"""``create_app(config)``: the agent's FastAPI application and its lifespan.

The app holds one object, ``app.state.agent`` (:class:`~lightd_agent.core.Agent`): config,
bus, backend, server manager, command ledger, dispatch key, and the subsystems started with
it. Subsystems (``(agent) -> async context manager``) are entered at startup *before* the
manager starts (so a durable listener sees the events recovery publishes) and exited at
shutdown *after* the manager stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from lightd_agent import __version__
from lightd_agent.api import openapi
from lightd_agent.api.deps import Authorized
from lightd_agent.api.errors import agent_error_handler, http_error_handler
from lightd_agent.api.routes import commands, containers, events, files, follow, health, schema
from lightd_agent.backend.base import Backend
from lightd_agent.backend.docker_sdk import ENGINE_API_ERROR, refused_status
from lightd_agent.backups import backups_subsystem
from lightd_agent.backups import routes as backup_routes
from lightd_agent.config import AgentConfig
from lightd_agent.console import routes as console_routes
from lightd_agent.core import Agent, Subsystem
from lightd_agent.disks.routes import router as disks_router
from lightd_agent.enrolment import coordinator_subsystem
from lightd_agent.errors import AgentError
from lightd_agent.events import EventBus
from lightd_agent.health import build_health
from lightd_agent.remote.routes import create_router as remote_router
from lightd_agent.remote.subsystem import remote_subsystem, remotes_subsystem
from lightd_agent.schedules import Clock
from lightd_agent.schedules import routes as schedule_routes
from lightd_agent.schedules.relay import schedule_relay_subsystem
from lightd_agent.stats_report import stats_subsystem
from lightd_agent.tls import configure_outbound
from lightd_shared.bodylimit import BodyLimitMiddleware
from lightd_shared.ratelimit import FailedAuthLimit
from lightd_shared.routing import method_not_allowed
from lightd_shared.wire import safe_text

__all__ = ["Subsystem", "build_health", "create_app"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    agent: Agent = app.state.agent
    async with AsyncExitStack() as stack:
        for factory in list(agent.subsystems):
            await stack.enter_async_context(factory(agent))
        await agent.manager.start()
        stack.push_async_callback(agent.manager.stop)
        stack.push_async_callback(agent.commands.close)
        stack.push_async_callback(agent.drain)
        await agent.scheduler.start()
        stack.push_async_callback(agent.scheduler.stop)
        log.info(
            "lightd agent started",
            extra={"node": agent.config.node.id, "version": __version__},
        )
        yield
    agent.bus.close()
    log.info("lightd agent stopped")


class _Draining:
    """While the agent shuts down, every request but ``/health`` gets 503 with the reason."""

    def __init__(self, app: ASGIApp, agent: Agent) -> None:
        self.app = app
        self.agent = agent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = self.agent.draining
        if reason is None or scope["type"] != "http" or scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": reason}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")],
            }
        )
        await send({"type": "http.response.body", "body": body})


_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})
"""Validation error types of a body that was no JSON object (e.g. bytes FastAPI did not parse)."""


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _field_of(error: dict[str, Any]) -> str:
    loc = [safe_text(str(part)) for part in error.get("loc", ()) if part != "body"]
    return ".".join(loc) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    parts = []
    for error in errors:
        message = safe_text(str(error.get("msg", "invalid"))).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            parts.append(f"malformed JSON body: {error.get('ctx', {}).get('error', message)}")
        elif (
            error.get("type") in _NOT_AN_OBJECT
            and tuple(error.get("loc", ())) == ("body",)
            and not _is_json(request.headers.get("content-type"))
        ):
            # FastAPI reads a body as JSON only when Content-Type says so; without the header
            # the JSON arrives as bytes and "not a valid dictionary" would say nothing useful.
            parts.append(
                f"body: {message} (the body was not read as JSON: send it with the header "
                "Content-Type: application/json)"
            )
        else:
            parts.append(f"{_field_of(error)}: {message}")
    clean = [
        {
            "loc": [p if isinstance(p, int) else safe_text(str(p)) for p in e.get("loc", ())],
            "msg": safe_text(str(e.get("msg"))),
            "type": str(e.get("type")),
        }
        for e in errors
    ]
    return JSONResponse(status_code=422, content={"detail": "; ".join(parts), "errors": clean})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=500,
        content={"detail": f"internal error ({type(exc).__name__}); see the agent's log"},
    )


async def _docker_refused(request: Request, exc: Exception) -> JSONResponse:
    """A Docker API error no route turned into an :class:`AgentError`: never a 500.

    Docker's own 404 (the container went away) and 409 (it is dead or being removed, e.g. a
    delete or reinstall racing this call) keep their status; anything else is a 502.
    """
    code, words = refused_status(exc)
    reason = safe_text(words)[:500]
    log.warning("Docker refused %s %s: %s", request.method, request.url.path, reason)
    return JSONResponse(status_code=code, content={"detail": f"Docker refused the call: {reason}"})


def create_app(
    config: AgentConfig,
    *,
    config_path: Path | None = None,
    subsystems: list[Subsystem] | None = None,
    bus: EventBus | None = None,
    backend: Backend | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the agent. Nothing touches Docker until the lifespan starts."""
    agent = Agent(
        config,
        config_path=config_path,
        bus=bus,
        backend=backend,
        clock=clock,
        subsystems=[
            remote_subsystem,
            remotes_subsystem,
            backups_subsystem,
            *(subsystems or []),
            coordinator_subsystem,
            stats_subsystem,
            schedule_relay_subsystem,
        ],
    )
    protected = config.authorization.enabled
    app = FastAPI(
        title="lightd agent",
        version=__version__,
        summary="Runs Docker containers (servers) on this host.",
        lifespan=_lifespan,
        # with a token, the API's description needs it too (api/routes/schema.py)
        docs_url=None if protected else "/docs",
        redoc_url=None if protected else "/redoc",
        openapi_url=None if protected else "/openapi.json",
    )
    openapi.install(app)
    app.state.agent = agent
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(AgentError, agent_error_handler)  # logs every 503/504
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(ENGINE_API_ERROR, _docker_refused)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(
        BodyLimitMiddleware, limit=config.server.max_body_size, exempt=files.is_upload
    )
    app.add_middleware(_Draining, agent=agent)
    # outermost: a blocked client is answered before anything else runs
    app.add_middleware(FailedAuthLimit, settings=config.server.rate_limit)
    configure_outbound(config.server.tls)
    app.include_router(health.router)
    app.include_router(containers.router)
    app.include_router(events.router)
    app.include_router(commands.router)
    app.include_router(follow.router)
    app.include_router(console_routes.router)
    app.include_router(remote_router(dependencies=[Authorized]))
    app.include_router(backup_routes.router)
    app.include_router(backup_routes.relay_router)
    app.include_router(disks_router)
    app.include_router(schedule_routes.router)
    app.include_router(files.router)
    if protected:
        app.include_router(schema.router)
    return app
