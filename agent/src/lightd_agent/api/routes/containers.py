"""``/containers``: lightd's own route names for servers (create, power, reinstall, logs...).

Every route needs the bearer token. Lifecycle actions (create, reinstall, power, delete) also
pass the bus's gate: while it refuses (e.g. the remote-sync outbox is full) they answer 503.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import PlainTextResponse
from sse_starlette.sse import EventSourceResponse

from lightd_agent.api.deps import (
    AgentDep,
    Authorized,
    BusDep,
    LifecycleAllowed,
    ManagerDep,
    lifecycle_allowed,
)
from lightd_agent.console.service import sse_events
from lightd_agent.errors import AgentError
from lightd_agent.lifecycle import Server
from lightd_shared.base import Payload
from lightd_shared.containers import (
    ActionBody,
    ContainerList,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ContainerView,
    ExecRequest,
    ExecResult,
)
from lightd_shared.routing import GuardFirstRoute

router = APIRouter(
    prefix="/containers",
    tags=["containers"],
    dependencies=[Authorized],
    route_class=GuardFirstRoute,
)


class Accepted(Payload):
    """``202``: the install (or reinstall) goes on in the background."""

    id: str
    state: ContainerState


class Deleted(Payload):
    id: str
    state: Literal["deleted"] = "deleted"
    volumes_removed: bool = False


def _status(server: Server) -> ContainerStatus:
    view = server.view()
    return ContainerStatus.model_validate(view.model_dump(exclude={"spec", "ports"}))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Create and install a server",
    responses={403: {"description": "policy refusal"}, 409: {"description": "id/port in use"}},
)
async def create(spec: ContainerSpec, manager: ManagerDep, bus: BusDep) -> Accepted:
    # The gate is asked here, not as a dependency, so that a refusal names the server (its id
    # is in the body) in the agent's log; a bad body is therefore a 422 before any 503.
    try:
        await lifecycle_allowed(bus)
        server = await manager.create(spec)
    except AgentError as exc:
        exc.server = exc.server or spec.id
        raise
    return Accepted(id=server.id, state="installing")


@router.get("", response_model=ContainerList, summary="All servers of this agent")
async def list_containers(manager: ManagerDep) -> ContainerList:
    await manager.settle_reads()
    views = manager.views()
    return ContainerList(containers=views, count=len(views))


@router.get("/{server_id}", response_model=ContainerView, summary="One server")
async def get_container(server_id: str, manager: ManagerDep) -> ContainerView:
    await manager.settle_reads()
    return manager.view(server_id)


@router.get("/{server_id}/status", response_model=ContainerStatus, summary="A server's state")
async def get_status(server_id: str, manager: ManagerDep) -> ContainerStatus:
    await manager.settle_reads()
    manager.view(server_id)
    return _status(manager.get(server_id))


async def _power(
    manager: ManagerDep, server_id: str, action: str, body: ActionBody | None
) -> ContainerStatus:
    timeout = (body or ActionBody()).timeout.total_seconds()
    server = await manager.power(server_id, action, timeout)
    return _status(server)


@router.post(
    "/{server_id}/start",
    response_model=ContainerStatus,
    dependencies=[LifecycleAllowed],
    summary="Start; answers once running",
)
async def start(server_id: str, manager: ManagerDep) -> ContainerStatus:
    return await _power(manager, server_id, "start", None)


@router.post(
    "/{server_id}/stop",
    response_model=ContainerStatus,
    dependencies=[LifecycleAllowed],
    summary="Graceful stop: stop signal, then kill after the timeout",
)
async def stop(
    server_id: str, manager: ManagerDep, body: ActionBody | None = None
) -> ContainerStatus:
    return await _power(manager, server_id, "stop", body)


@router.post(
    "/{server_id}/restart",
    response_model=ContainerStatus,
    dependencies=[LifecycleAllowed],
    summary="Graceful stop, then start",
)
async def restart(
    server_id: str, manager: ManagerDep, body: ActionBody | None = None
) -> ContainerStatus:
    return await _power(manager, server_id, "restart", body)


@router.post(
    "/{server_id}/kill",
    response_model=ContainerStatus,
    dependencies=[LifecycleAllowed],
    summary="Kill at once; ends in stopped",
)
async def kill(server_id: str, manager: ManagerDep) -> ContainerStatus:
    return await _power(manager, server_id, "kill", None)


@router.post(
    "/{server_id}/reinstall",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[LifecycleAllowed],
    summary="Re-run the install, keeping the volume",
)
async def reinstall(
    server_id: str, manager: ManagerDep, body: ActionBody | None = None
) -> Accepted:
    """``{"timeout": "10s"}``: how long a running server gets to stop before it is killed."""
    timeout = (body or ActionBody()).timeout.total_seconds()
    server = await manager.reinstall(server_id, stop_timeout=timeout)
    return Accepted(id=server.id, state="installing")


@router.delete(
    "/{server_id}",
    response_model=Deleted,
    dependencies=[LifecycleAllowed],
    summary="Remove the server (and its volume with ?volumes=true)",
)
async def delete(server_id: str, manager: ManagerDep, volumes: bool = False) -> Deleted:
    await manager.delete(server_id, volumes=volumes)
    return Deleted(id=server_id, volumes_removed=volumes)


@router.get(
    "/{server_id}/logs",
    summary="Output: ?tail=N lines as text, ?follow=true as an SSE stream",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}, "text/event-stream": {}}}},
)
async def logs(
    server_id: str,
    manager: ManagerDep,
    agent: AgentDep,
    tail: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    follow: bool = False,
) -> Any:
    if not follow:
        return PlainTextResponse(await manager.logs(server_id, tail))
    # the live console: a bounded backlog, then throttled (see lightd_agent.console)
    lines = await agent.console.follow(server_id, tail)
    return EventSourceResponse(sse_events(lines), ping=15)


@router.get("/{server_id}/stats", response_model=ContainerStats, summary="CPU, memory, network")
async def stats(server_id: str, manager: ManagerDep) -> ContainerStats:
    return await manager.stats(server_id)


@router.post("/{server_id}/exec", response_model=ExecResult, summary="Run a command inside")
async def exec_command(server_id: str, body: ExecRequest, manager: ManagerDep) -> ExecResult:
    return await manager.exec(server_id, body.command, body.timeout.total_seconds())
