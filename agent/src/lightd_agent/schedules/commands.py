"""The coordinator's ``schedules.*`` container commands, run on this agent's scheduler.

``lightd_agent.commands`` hands every ``schedules.*`` action here (one branch). The answer is
typed in the result's ``data`` (the list, or one schedule; a deletion has none) and
``output`` is one line for people. A bad cron is a ``failed`` result naming ``cron``.
"""

from __future__ import annotations

from typing import Literal

from lightd_agent.schedules.scheduler import Scheduler
from lightd_shared.commands import (
    ScheduleCreateCommand,
    ScheduleListCommand,
    ScheduleRefCommand,
    ScheduleUpdateCommand,
)
from lightd_shared.schedules import ScheduleList, ScheduleView

__all__ = ["ScheduleAnyCommand", "run_schedule_command"]

ScheduleAnyCommand = (
    ScheduleListCommand | ScheduleRefCommand | ScheduleCreateCommand | ScheduleUpdateCommand
)


def _line(view: ScheduleView, what: str) -> str:
    when = view.next_run.isoformat() if view.next_run else "never (disabled)"
    return f"schedule {view.id} of {view.server} {what}; next run {when}"


def run_schedule_command(
    scheduler: Scheduler, command: ScheduleAnyCommand
) -> tuple[Literal["success"], str, ScheduleList | ScheduleView | None]:
    """Run one ``schedules.*`` command; agent errors (404, 409, 422) propagate."""
    server = command.params.server
    if isinstance(command, ScheduleListCommand):
        views = scheduler.list(server)
        return (
            "success",
            f"{len(views)} schedule(s) of {server}",
            ScheduleList(schedules=views, count=len(views)),
        )
    if isinstance(command, ScheduleCreateCommand):
        view = scheduler.create(server, command.params.schedule)
        return "success", _line(view, "created"), view
    if isinstance(command, ScheduleUpdateCommand):
        view = scheduler.patch(server, command.params.schedule_id, command.params.changes)
        return "success", _line(view, "updated"), view
    schedule_id = command.params.schedule_id
    if command.action == "schedules.delete":
        scheduler.delete(server, schedule_id)
        return "success", f"schedule {schedule_id} of {server} deleted", None
    view = scheduler.run_now(server, schedule_id)
    return "success", _line(view, "started"), view
