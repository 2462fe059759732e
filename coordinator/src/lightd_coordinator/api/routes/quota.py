"""``/api/v1/nodes/{id}/containers/{server}/quota`` and ``.../resize``: REST sugar over the
``quota.get`` and ``quota.resize`` container commands (a server's enforced disk quota)::

    GET  /containers/{server}/quota                   quota.get
    POST /containers/{server}/resize  {"size": MB}    quota.resize

Each answers the command's :class:`~lightd_shared.commands.CommandResult`; its ``data`` is the
agent's :class:`~lightd_shared.quota.QuotaView` (``size_mb``, ``used_mb``, ``available_mb``,
``percentage_used``, ...). A refusal (no ``limits.disk``, a shrink that does not fit, a running
server) is a ``failed`` result whose ``output`` is the agent's reason.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.api.routes.containers import NodeId, ServerId
from lightd_shared.commands import (
    Command,
    CommandResult,
    QuotaGetCommand,
    QuotaResizeCommand,
    QuotaResizeParams,
    ServerParams,
)
from lightd_shared.quota import ResizeRequest
from lightd_shared.routing import GuardFirstRoute

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/nodes/{node_id}/containers",
    tags=["containers"],
    dependencies=[Depends(require_auth)],
    route_class=GuardFirstRoute,
)


async def _run(coordinator: CoordinatorDep, node_id: str, command: Command) -> CommandResult:
    node = await coordinator.fleet.get(node_id)
    if node is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    result, _ = await coordinator.dispatcher.submit(node, command, wait=True)
    return result


@router.get("/{server}/quota", response_model=CommandResult, summary="A server's disk quota")
async def container_quota(
    node_id: NodeId, server: ServerId, coordinator: CoordinatorDep
) -> CommandResult:
    command = QuotaGetCommand(
        type="container", action="quota.get", params=ServerParams(server=server)
    )
    return await _run(coordinator, node_id, command)


@router.post(
    "/{server}/resize", response_model=CommandResult, summary="Resize a server's disk quota"
)
async def container_resize(
    node_id: NodeId, server: ServerId, body: ResizeRequest, coordinator: CoordinatorDep
) -> CommandResult:
    """``{"size": MB}``: grow, or (stopped, and when the data fits) shrink."""
    params = QuotaResizeParams(server=server, size=body.size)
    command = QuotaResizeCommand(type="container", action="quota.resize", params=params)
    return await _run(coordinator, node_id, command)
