"""``/api/v1/nodes/{id}/containers``: REST sugar over ``type: "container"`` commands.

Each route builds the typed command an operator could send to
``POST /api/v1/nodes/{id}/commands`` and answers with its
:class:`~lightd_shared.commands.CommandResult`: ``data`` holds the agent's answer typed (the
list, a server's status, a deletion), ``output`` one line for people (``logs``/``exec``: the
text; ``failed``: the error message)::

    GET    /containers                      list
    POST   /containers          (a spec)    create
    GET    /containers/{server}             status
    DELETE /containers/{server}             delete
    POST   /containers/{server}/{start|stop|restart|kill|reinstall}
    GET    /containers/{server}/logs?tail=N logs (?follow=true: SSE, see follow.py)
    POST   /containers/{server}/exec        {"command": "...", "timeout": "30s"}
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.api.routes.follow import follow_response
from lightd_shared.commands import (
    Command,
    CommandResult,
    CreateCommand,
    CreateParams,
    DeleteCommand,
    DeleteParams,
    ExecInsideCommand,
    ExecInsideParams,
    ListCommand,
    LogsCommand,
    LogsParams,
    PowerCommand,
    ServerParams,
    StopCommand,
    StoppingParams,
)
from lightd_shared.containers import ContainerSpec, ExecRequest
from lightd_shared.routing import GuardFirstRoute

router = APIRouter(
    prefix="/api/v1/nodes/{node_id}/containers",
    tags=["containers"],
    dependencies=[Depends(require_auth)],
    route_class=GuardFirstRoute,
)

NodeId = Annotated[str, Path(description="The node's id")]
ServerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="The server id")
]
Power = Literal["start", "stop", "restart", "kill", "reinstall"]


async def _run(coordinator: CoordinatorDep, node_id: str, command: Command) -> CommandResult:
    node = await coordinator.fleet.get(node_id)
    if node is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    result, _ = await coordinator.dispatcher.submit(node, command, wait=True)
    return result


@router.get("", response_model=CommandResult, summary="List the node's servers")
async def list_containers(node_id: NodeId, coordinator: CoordinatorDep) -> CommandResult:
    return await _run(coordinator, node_id, ListCommand(type="container", action="list"))


@router.post("", response_model=CommandResult, summary="Create a server on the node")
async def create_container(
    node_id: NodeId, spec: ContainerSpec, coordinator: CoordinatorDep
) -> CommandResult:
    """The body is the agent's container spec, validated here before it is sent."""
    command = CreateCommand(type="container", action="create", params=CreateParams(spec=spec))
    return await _run(coordinator, node_id, command)


@router.get("/{server}", response_model=CommandResult, summary="A server's status")
async def container_status(
    node_id: NodeId, server: ServerId, coordinator: CoordinatorDep
) -> CommandResult:
    params = ServerParams(server=server)
    return await _run(
        coordinator, node_id, PowerCommand(type="container", action="status", params=params)
    )


@router.delete("/{server}", response_model=CommandResult, summary="Delete a server")
async def delete_container(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    volumes: bool = False,
) -> CommandResult:
    params = DeleteParams(server=server, volumes=volumes)
    return await _run(
        coordinator, node_id, DeleteCommand(type="container", action="delete", params=params)
    )


@router.get("/{server}/logs", response_model=CommandResult, summary="A server's output")
async def container_logs(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    tail: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    follow: Annotated[bool, Query(description="Stream the output as SSE, relayed")] = False,
) -> Any:
    if follow:
        return await follow_response(coordinator, node_id, server, tail)
    params = LogsParams(server=server, tail=tail)
    return await _run(
        coordinator, node_id, LogsCommand(type="container", action="logs", params=params)
    )


@router.post("/{server}/exec", response_model=CommandResult, summary="Run a command inside")
async def container_exec(
    node_id: NodeId, server: ServerId, body: ExecRequest, coordinator: CoordinatorDep
) -> CommandResult:
    params = ExecInsideParams(server=server, command=body.command, timeout=body.timeout)
    return await _run(
        coordinator, node_id, ExecInsideCommand(type="container", action="exec", params=params)
    )


def _power_route(action: Power) -> None:
    async def container_action(
        node_id: NodeId, server: ServerId, coordinator: CoordinatorDep
    ) -> CommandResult:
        command: Command
        if action == "start" or action == "kill":
            command = PowerCommand(
                type="container", action=action, params=ServerParams(server=server)
            )
        else:
            command = StopCommand(
                type="container", action=action, params=StoppingParams(server=server)
            )
        return await _run(coordinator, node_id, command)

    # one route per action (not ``/{server}/{action}``): then ``POST .../logs`` is the 405 it
    # should be, not a 422 about the action's name
    router.add_api_route(
        f"/{{server}}/{action}",
        container_action,
        methods=["POST"],
        response_model=CommandResult,
        summary=f"Power action: {action}",
        name=f"container_{action}",
    )


for _action in typing.get_args(Power):
    _power_route(_action)
