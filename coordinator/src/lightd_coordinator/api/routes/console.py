"""``POST /api/v1/nodes/{id}/containers/{server}/console``: one line to a server's stdin.

The body is the agent's own (:class:`~lightd_shared.console.ConsoleInput`
``{"command": "say hello"}``), validated here (one line, bounded) before the
``container console`` command is dispatched; the answer is its
:class:`~lightd_shared.commands.CommandResult` (``output``: what was sent, or the agent's
refusal: not running, no open stdin). The live console is the relayed log follow
(``GET .../logs?follow=true``, :mod:`lightd_coordinator.logstream`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.api.routes.containers import NodeId, ServerId, _run
from lightd_shared.commands import CommandResult, ConsoleCommand, ConsoleParams
from lightd_shared.console import ConsoleInput
from lightd_shared.routing import GuardFirstRoute

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/nodes/{node_id}/containers",
    tags=["containers"],
    dependencies=[Depends(require_auth)],
    route_class=GuardFirstRoute,
)


@router.post(
    "/{server}/console",
    response_model=CommandResult,
    summary="Write one line to a server's stdin (its console)",
)
async def container_console(
    node_id: NodeId, server: ServerId, body: ConsoleInput, coordinator: CoordinatorDep
) -> CommandResult:
    params = ConsoleParams(server=server, command=body.command)
    return await _run(
        coordinator, node_id, ConsoleCommand(type="container", action="console", params=params)
    )
