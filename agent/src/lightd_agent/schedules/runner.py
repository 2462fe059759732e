"""One run of a schedule: its tasks in order, each ``delay`` after the previous one ended.

The runner asks the :class:`~.actions.TaskActions` for everything it does and the
:class:`~.clock.Clock` for every wait, and says what happens through ``publish`` (one
``schedule_*`` event each) and ``record`` (the run so far, stored after every step, so an
answer shows a run in progress). It never raises for a task: a task that fails ends the run
``failed`` (the tasks after it ``skipped``) unless it has ``continue_on_failure``.

::

    only_when_running and the server is not running ─► skipped (schedule_skipped)
    else schedule_started ─► [wait delay ─► task ─► schedule_task] ... ─► schedule_finished
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from lightd_agent.schedules.actions import TaskActions, TaskFailed
from lightd_agent.schedules.clock import Clock
from lightd_shared.schedules import (
    RunTrigger,
    ScheduleEvent,
    ScheduleRun,
    ScheduleSpec,
    ScheduleTask,
    TaskResult,
)

__all__ = ["Publish", "run_schedule"]

log = logging.getLogger("lightd_agent.schedules")

Publish = Callable[[str, ScheduleEvent], None]
"""``publish(kind, data)``: one ``schedule_*`` event of this schedule's server."""


async def _perform(actions: TaskActions, server: str, task: ScheduleTask) -> None:
    if task.action == "power":
        await actions.power(server, task.payload)
    elif task.action == "command":
        await actions.console(server, task.payload)
    else:
        await actions.backup(server)


async def run_schedule(
    server: str,
    spec: ScheduleSpec,
    trigger: RunTrigger,
    *,
    actions: TaskActions,
    clock: Clock,
    publish: Publish,
    record: Callable[[ScheduleRun], None],
) -> ScheduleRun:
    """Run ``spec``'s tasks for ``server`` and answer how it went."""
    schedule_id = spec.id or ""

    def event(kind: str, run: ScheduleRun, task: TaskResult | None = None) -> None:
        outcome = task.outcome if task is not None else run.outcome
        data = ScheduleEvent(
            schedule=schedule_id,
            name=spec.name,
            trigger=trigger,
            outcome=outcome,
            task=task,
            error=task.error if task is not None else run.error,
        )
        publish(kind, data)

    run = ScheduleRun(trigger=trigger, started=clock.now(), outcome="running")
    state = actions.state(server)
    if spec.only_when_running and state != "running":
        run.outcome = "skipped"
        run.error = f"server {server} is {state or 'unknown'}, not running (only_when_running)"
        run.finished = clock.now()
        record(run)
        event("schedule_skipped", run)
        log.info("schedule %s of %s skipped: %s", schedule_id, server, run.error)
        return run
    record(run)
    event("schedule_started", run)
    failed: str | None = None
    stopped = False
    previous_end = run.started
    try:
        for index, task in enumerate(spec.tasks):
            if stopped:
                skipped = TaskResult(index=index, action=task.action, outcome="skipped")
                run.tasks = [*run.tasks, skipped]
                continue
            await clock.sleep_until(previous_end + task.delay)
            result = TaskResult(
                index=index, action=task.action, outcome="success", started=clock.now()
            )
            try:
                await _perform(actions, server, task)
            except TaskFailed as exc:
                result.outcome, result.error = "failed", str(exc)
                failed = failed or f"task {index} ({task.action}) failed: {exc}"
            except Exception as exc:  # a bug in an action must not end the scheduler
                log.exception("task %d of schedule %s of %s failed", index, schedule_id, server)
                result.outcome, result.error = "failed", f"agent error: {type(exc).__name__}"
                failed = failed or f"task {index} ({task.action}) failed: {result.error}"
            stopped = result.outcome == "failed" and not task.continue_on_failure
            result.finished = previous_end = clock.now()
            run.tasks = [*run.tasks, result]
            record(run)
            event("schedule_task", run, result)
    except asyncio.CancelledError:
        run.outcome = "failed"
        run.error = "cut off: the agent stopped or the schedule was deleted"
        run.finished = clock.now()
        record(run)
        raise
    run.outcome = "failed" if failed else "success"
    run.error = failed
    run.finished = clock.now()
    record(run)
    event("schedule_finished", run)
    log.info("schedule %s of %s ended %s", schedule_id, server, run.outcome)
    return run
