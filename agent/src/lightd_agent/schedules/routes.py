"""``/containers/{id}/schedules``: a server's scheduled tasks (CRUD, and ``run-now``).

Every route needs the bearer token. A bad body is a 422 naming the field; a cron expression
that parses but cannot be used (``61 * * * *``, ``0 0 31 2 *``) is a 422 naming ``cron`` and
the problem. Nothing is changed by a refused request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError

from lightd_agent.api.deps import Authorized, get_agent
from lightd_agent.schedules.cron import check_cron
from lightd_agent.schedules.scheduler import Scheduler
from lightd_shared.routing import GuardFirstRoute
from lightd_shared.schedules import ScheduleList, SchedulePatch, ScheduleSpec, ScheduleView

__all__ = ["router"]

router = APIRouter(
    prefix="/containers/{server_id}/schedules",
    tags=["schedules"],
    dependencies=[Authorized],
    route_class=GuardFirstRoute,
)


def get_scheduler(request: Request) -> Scheduler:
    return get_agent(request).scheduler


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]


def _check(cron: str | None, timezone: str | None) -> None:
    """The full cron check, answered in the agent's one 422 shape."""
    if cron is None:
        return
    try:
        check_cron(cron, timezone or "UTC")
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "cron"), "msg": str(exc), "type": "value_error"}]
        ) from None


@router.get("", response_model=ScheduleList, summary="A server's schedules")
async def list_schedules(server_id: str, scheduler: SchedulerDep) -> ScheduleList:
    views = scheduler.list(server_id)
    return ScheduleList(schedules=views, count=len(views))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleView,
    summary="Create a schedule",
)
async def create_schedule(
    server_id: str, spec: ScheduleSpec, scheduler: SchedulerDep
) -> ScheduleView:
    _check(spec.cron, spec.timezone)
    return scheduler.create(server_id, spec)


@router.get("/{schedule_id}", response_model=ScheduleView, summary="One schedule")
async def get_schedule(server_id: str, schedule_id: str, scheduler: SchedulerDep) -> ScheduleView:
    return scheduler.view(server_id, schedule_id)


@router.put("/{schedule_id}", response_model=ScheduleView, summary="Replace a schedule")
async def replace_schedule(
    server_id: str, schedule_id: str, spec: ScheduleSpec, scheduler: SchedulerDep
) -> ScheduleView:
    _check(spec.cron, spec.timezone)
    return scheduler.replace(server_id, schedule_id, spec)


@router.patch("/{schedule_id}", response_model=ScheduleView, summary="Change some fields")
async def patch_schedule(
    server_id: str, schedule_id: str, patch: SchedulePatch, scheduler: SchedulerDep
) -> ScheduleView:
    current = scheduler.view(server_id, schedule_id)
    _check(patch.cron or current.cron, patch.timezone or current.timezone)
    return scheduler.patch(server_id, schedule_id, patch)


@router.delete(
    "/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a schedule"
)
async def delete_schedule(server_id: str, schedule_id: str, scheduler: SchedulerDep) -> None:
    scheduler.delete(server_id, schedule_id)


@router.post(
    "/{schedule_id}/run-now",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScheduleView,
    summary="Run the schedule now (409 while it runs)",
)
async def run_now(server_id: str, schedule_id: str, scheduler: SchedulerDep) -> ScheduleView:
    return scheduler.run_now(server_id, schedule_id)
