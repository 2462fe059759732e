"""``/api/v1/nodes/{id}/containers/{server}/schedules``: REST sugar over ``schedules.*``.

Each route builds the typed container command an operator could send to
``POST /api/v1/nodes/{id}/commands`` and answers its
:class:`~lightd_shared.commands.CommandResult` (``data``: the schedule list or one schedule,
with ``next_run`` and ``last_result``)::

    GET    .../schedules                         schedules.list
    POST   .../schedules            (a spec)     schedules.create
    PATCH  .../schedules/{schedule} (changes)    schedules.update
    DELETE .../schedules/{schedule}              schedules.delete
    POST   .../schedules/{schedule}/run-now      schedules.run

Bodies are the shared schedule models, validated here (422 naming the field) before anything
is sent; the agent checks the cron expression fully (a ``failed`` result naming ``cron``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_shared.commands import (
    Command,
    CommandResult,
    ScheduleCreateCommand,
    ScheduleCreateParams,
    ScheduleListCommand,
    ScheduleRefCommand,
    ScheduleRefParams,
    ScheduleUpdateCommand,
    ScheduleUpdateParams,
    ServerParams,
)
from lightd_shared.routing import GuardFirstRoute
from lightd_shared.schedules import SchedulePatch, ScheduleSpec

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/nodes/{node_id}/containers/{server}/schedules",
    tags=["schedules"],
    dependencies=[Depends(require_auth)],
    route_class=GuardFirstRoute,
)

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
NodeId = Annotated[str, Path(description="The node's id")]
ServerId = Annotated[str, Path(pattern=_ID, description="The server id")]
ScheduleId = Annotated[str, Path(pattern=_ID, description="The schedule id")]


async def _run(coordinator: CoordinatorDep, node_id: str, command: Command) -> CommandResult:
    node = await coordinator.fleet.get(node_id)
    if node is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    result, _ = await coordinator.dispatcher.submit(node, command, wait=True)
    return result


@router.get("", response_model=CommandResult, summary="A server's schedules")
async def list_schedules(
    node_id: NodeId, server: ServerId, coordinator: CoordinatorDep
) -> CommandResult:
    command = ScheduleListCommand(
        type="container", action="schedules.list", params=ServerParams(server=server)
    )
    return await _run(coordinator, node_id, command)


@router.post("", response_model=CommandResult, summary="Create a schedule")
async def create_schedule(
    node_id: NodeId, server: ServerId, spec: ScheduleSpec, coordinator: CoordinatorDep
) -> CommandResult:
    params = ScheduleCreateParams(server=server, schedule=spec)
    command = ScheduleCreateCommand(type="container", action="schedules.create", params=params)
    return await _run(coordinator, node_id, command)


@router.patch("/{schedule}", response_model=CommandResult, summary="Change a schedule")
async def update_schedule(
    node_id: NodeId,
    server: ServerId,
    schedule: ScheduleId,
    changes: SchedulePatch,
    coordinator: CoordinatorDep,
) -> CommandResult:
    params = ScheduleUpdateParams(server=server, schedule_id=schedule, changes=changes)
    command = ScheduleUpdateCommand(type="container", action="schedules.update", params=params)
    return await _run(coordinator, node_id, command)


@router.delete("/{schedule}", response_model=CommandResult, summary="Delete a schedule")
async def delete_schedule(
    node_id: NodeId, server: ServerId, schedule: ScheduleId, coordinator: CoordinatorDep
) -> CommandResult:
    params = ScheduleRefParams(server=server, schedule_id=schedule)
    command = ScheduleRefCommand(type="container", action="schedules.delete", params=params)
    return await _run(coordinator, node_id, command)


@router.post("/{schedule}/run-now", response_model=CommandResult, summary="Run it now")
async def run_schedule(
    node_id: NodeId, server: ServerId, schedule: ScheduleId, coordinator: CoordinatorDep
) -> CommandResult:
    params = ScheduleRefParams(server=server, schedule_id=schedule)
    command = ScheduleRefCommand(type="container", action="schedules.run", params=params)
    return await _run(coordinator, node_id, command)
