"""The scheduler: every schedule's cron clock, its runs (never two at once) and its changes.

Each enabled schedule has one ticker task: sleep (on the injected :class:`~.clock.Clock`)
until the cron's next time after the schedule's *cursor*, move the cursor there (stored
before the run starts, so a crash never repeats a run), then trigger a run. A trigger while
the schedule's previous run is still going does not start another: it is recorded as
``last_skipped`` and published as ``schedule_skipped``.

At start, every schedule whose next time after its cursor has passed missed a run while the
agent was down: ``missed: run_once`` runs it once now (trigger ``missed``), ``skip`` records it
as skipped. Then the cursor moves to now and ticking goes on.

Changes (create, replace, patch, delete) are written to the store first and applied in
memory only once stored, so a refused write leaves everything as it was. A server's
schedules go with it: its ``Deleted`` event removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from lightd_agent.errors import BadRequest, Conflict, NotFound, Unavailable
from lightd_agent.events import EventBus, LifecycleEvent, LifecycleKind
from lightd_agent.schedules.actions import TaskActions
from lightd_agent.schedules.clock import Clock
from lightd_agent.schedules.cron import check_cron, next_after
from lightd_agent.schedules.runner import run_schedule
from lightd_agent.schedules.store import Schedule, ScheduleStore
from lightd_shared.schedules import (
    MAX_SCHEDULES,
    RunTrigger,
    ScheduleEvent,
    SchedulePatch,
    ScheduleRun,
    ScheduleSkip,
    ScheduleSpec,
    ScheduleView,
)

__all__ = ["Scheduler"]

log = logging.getLogger("lightd_agent.schedules")

Key = tuple[str, str]


class Scheduler:
    """All schedules of this agent: kept in a :class:`ScheduleStore`, run on a :class:`Clock`."""

    def __init__(
        self, store: ScheduleStore, actions: TaskActions, clock: Clock, bus: EventBus
    ) -> None:
        self.store = store
        self.actions = actions
        self.clock = clock
        self.bus = bus
        self._schedules: dict[Key, Schedule] = {}
        self._tickers: dict[Key, asyncio.Task[None]] = {}
        self._runs: dict[Key, asyncio.Task[ScheduleRun]] = {}
        self._detach: Callable[[], None] = lambda: None
        self._started = False

    # -- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Restore every stored schedule, handle the runs missed while down, start ticking."""
        self._started = True
        self._detach = self.bus.add_listener(self._on_event)
        for schedule in self.store.all():
            self._schedules[schedule.key] = schedule
        now = self.clock.now()
        for schedule in list(self._schedules.values()):
            if not schedule.spec.enabled:
                continue
            due = next_after(schedule.spec.cron, schedule.spec.timezone, schedule.cursor)
            if due <= now:
                try:
                    self._missed(schedule)
                except Unavailable as exc:  # the state directory cannot be written now
                    log.error("schedule %s of %s: %s", *_k(schedule), exc.message)
            self._tick(schedule)
        log.info("schedules restored: %d", len(self._schedules))

    def _missed(self, schedule: Schedule) -> None:
        schedule.cursor = self.clock.now()
        if schedule.spec.missed == "run_once":
            self._save(schedule)
            log.info("schedule %s of %s missed a run while down: running it once", *_k(schedule))
            self._trigger(schedule, "missed")
            return
        reason = "missed while the agent was down (missed: skip)"
        schedule.last_skipped = ScheduleSkip(at=self.clock.now(), trigger="missed", reason=reason)
        self._save(schedule)
        self._publish_skip(schedule, "missed", reason)

    async def stop(self) -> None:
        """Stop ticking; cut off running runs (each is stored ``failed``, saying so)."""
        self._detach()
        tasks: list[asyncio.Task[Any]] = [*self._tickers.values(), *self._runs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tickers.clear()
        self._runs.clear()
        self.store.close()

    # -- reading ----------------------------------------------------------------------------

    def list(self, server: str) -> list[ScheduleView]:
        self._server(server)
        found = [s for (owner, _), s in self._schedules.items() if owner == server]
        return [self._view(s) for s in sorted(found, key=lambda s: s.id)]

    def view(self, server: str, schedule_id: str) -> ScheduleView:
        return self._view(self._get(server, schedule_id))

    # -- changes ----------------------------------------------------------------------------

    def create(self, server: str, spec: ScheduleSpec) -> ScheduleView:
        self._server(server)
        _check(spec)
        schedule_id = spec.id or f"s-{secrets.token_hex(4)}"
        if (server, schedule_id) in self._schedules:
            raise Conflict(f"server {server} already has a schedule {schedule_id!r}")
        count = sum(1 for owner, _ in self._schedules if owner == server)
        if count >= MAX_SCHEDULES:
            raise Conflict(
                f"server {server} has {count} schedules, the most one server may have; "
                "delete one first"
            )
        schedule = Schedule(
            server=server,
            spec=spec.model_copy(update={"id": schedule_id}),
            cursor=self.clock.now(),
        )
        self._save(schedule)
        self._schedules[schedule.key] = schedule
        self._tick(schedule)
        return self._view(schedule)

    def replace(self, server: str, schedule_id: str, spec: ScheduleSpec) -> ScheduleView:
        current = self._get(server, schedule_id)
        if spec.id is not None and spec.id != schedule_id:
            raise BadRequest(f"id: the body's id {spec.id!r} is not the path's {schedule_id!r}")
        return self._apply(current, spec.model_copy(update={"id": schedule_id}))

    def patch(self, server: str, schedule_id: str, patch: SchedulePatch) -> ScheduleView:
        current = self._get(server, schedule_id)
        merged = current.spec.model_dump(mode="json") | patch.model_dump(
            mode="json", exclude_unset=True, exclude_none=True
        )
        return self._apply(current, ScheduleSpec.model_validate_json(json.dumps(merged)))

    def _apply(self, current: Schedule, spec: ScheduleSpec) -> ScheduleView:
        _check(spec)
        updated = Schedule(
            server=current.server,
            spec=spec,
            cursor=self.clock.now(),  # a changed schedule does not owe runs from before
            last_result=current.last_result,
            last_skipped=current.last_skipped,
        )
        self._save(updated)
        self._schedules[updated.key] = updated
        self._untick(updated.key)
        self._tick(updated)
        return self._view(updated)

    def delete(self, server: str, schedule_id: str) -> None:
        schedule = self._get(server, schedule_id)
        try:
            self.store.delete(server, schedule_id)
        except Exception as exc:
            raise Unavailable(
                f"the schedule could not be deleted from {self.store.path}: {exc}"
            ) from exc
        self._forget(schedule.key)

    def run_now(self, server: str, schedule_id: str) -> ScheduleView:
        """Start a run at once (202); 409 while the schedule is running."""
        schedule = self._get(server, schedule_id)
        if not self._trigger(schedule, "run_now"):
            raise Conflict(
                f"schedule {schedule_id!r} of {server} is running already; a schedule never "
                "runs twice at once (see last_result)"
            )
        return self._view(schedule)

    def forget_server(self, server: str) -> None:
        """The server is gone: its schedules too."""
        for key in [k for k in self._schedules if k[0] == server]:
            self._forget(key)
        try:
            self.store.delete_server(server)
        except Exception:
            log.exception("could not delete the schedules of deleted server %s", server)

    # -- inside -----------------------------------------------------------------------------

    def _on_event(self, event: LifecycleEvent) -> None:
        if event.kind == "Deleted":
            self.forget_server(event.server)

    def _server(self, server: str) -> None:
        if self.actions.state(server) is None:
            raise NotFound(f"no server with id {server!r} on this agent")

    def _get(self, server: str, schedule_id: str) -> Schedule:
        self._server(server)
        schedule = self._schedules.get((server, schedule_id))
        if schedule is None:
            raise NotFound(f"server {server} has no schedule {schedule_id!r}")
        return schedule

    def _save(self, schedule: Schedule) -> None:
        try:
            self.store.put(schedule)
        except Exception as exc:
            raise Unavailable(
                f"the schedule could not be written to {self.store.path}: {exc}; nothing changed"
            ) from exc

    def _record(self, schedule: Schedule) -> Callable[[ScheduleRun], None]:
        def record(run: ScheduleRun) -> None:
            current = self._schedules.get(schedule.key)
            if current is None:
                return
            current.last_result = run.model_copy(deep=True)
            try:
                self.store.put(current)
            except Exception:
                log.exception("could not store the run of schedule %s of %s", *_k(schedule))

        return record

    def _forget(self, key: Key) -> None:
        self._schedules.pop(key, None)
        self._untick(key)
        run = self._runs.pop(key, None)
        if run is not None:
            run.cancel()

    def _tick(self, schedule: Schedule) -> None:
        if self._started and schedule.spec.enabled:
            self._tickers[schedule.key] = asyncio.create_task(
                self._ticker(schedule.key), name=f"schedule {schedule.id} of {schedule.server}"
            )

    def _untick(self, key: Key) -> None:
        ticker = self._tickers.pop(key, None)
        if ticker is not None:
            ticker.cancel()

    async def _ticker(self, key: Key) -> None:
        while True:
            schedule = self._schedules.get(key)
            if schedule is None:
                return
            due = next_after(schedule.spec.cron, schedule.spec.timezone, schedule.cursor)
            await self.clock.sleep_until(due)
            schedule = self._schedules.get(key)
            if schedule is None:
                return
            schedule.cursor = max(due, self.clock.now())
            try:
                self.store.put(schedule)
            except Exception:
                log.exception("could not store the cursor of schedule %s of %s", *key)
            self._trigger(schedule, "cron")

    def _trigger(self, schedule: Schedule, trigger: RunTrigger) -> bool:
        """Start a run, or record a skip when one is running; whether it started."""
        running = self._runs.get(schedule.key)
        if running is not None and not running.done():
            started = schedule.last_result.started if schedule.last_result else None
            reason = "the schedule's previous run was still running" + (
                f" (started {started.isoformat()})" if started else ""
            )
            schedule.last_skipped = ScheduleSkip(
                at=self.clock.now(), trigger=trigger, reason=reason
            )
            with contextlib.suppress(Exception):
                self.store.put(schedule)
            self._publish_skip(schedule, trigger, reason)
            log.info("schedule %s of %s not started: %s", schedule.id, schedule.server, reason)
            return False
        spec = schedule.spec
        task = asyncio.create_task(
            run_schedule(
                schedule.server,
                spec,
                trigger,
                actions=self.actions,
                clock=self.clock,
                publish=self._publisher(schedule.server),
                record=self._record(schedule),
            ),
            name=f"run of schedule {schedule.id} of {schedule.server}",
        )
        self._runs[schedule.key] = task
        key = schedule.key
        task.add_done_callback(lambda done: self._ended(key, done))
        return True

    def _ended(self, key: Key, task: asyncio.Task[ScheduleRun]) -> None:
        if self._runs.get(key) is task:
            del self._runs[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("a run of schedule %s of %s ended in a bug", *key, exc_info=task.exception())

    def _publisher(self, server: str) -> Callable[[str, ScheduleEvent], None]:
        def publish(kind: str, data: ScheduleEvent) -> None:
            found = self.actions.state(server) or "deleted"
            self.bus.publish(
                LifecycleEvent(
                    server=server,
                    kind=_kind(kind),
                    state=found,
                    data=data.model_dump_json(exclude_none=True),
                )
            )

        return publish

    def _publish_skip(self, schedule: Schedule, trigger: RunTrigger, reason: str) -> None:
        data = ScheduleEvent(
            schedule=schedule.id,
            name=schedule.spec.name,
            trigger=trigger,
            outcome="skipped",
            error=reason,
        )
        self._publisher(schedule.server)("schedule_skipped", data)

    def _view(self, schedule: Schedule) -> ScheduleView:
        spec = schedule.spec
        next_run = next_after(spec.cron, spec.timezone, schedule.cursor) if spec.enabled else None
        running = schedule.key in self._runs and not self._runs[schedule.key].done()
        return ScheduleView(
            id=schedule.id,
            server=schedule.server,
            name=spec.name,
            cron=spec.cron,
            timezone=spec.timezone,
            enabled=spec.enabled,
            only_when_running=spec.only_when_running,
            missed=spec.missed,
            tasks=list(spec.tasks),
            next_run=next_run,
            running=running,
            last_result=schedule.last_result,
            last_skipped=schedule.last_skipped,
        )


_KINDS: dict[str, LifecycleKind] = {
    "schedule_started": "schedule_started",
    "schedule_task": "schedule_task",
    "schedule_finished": "schedule_finished",
    "schedule_skipped": "schedule_skipped",
}


def _kind(kind: str) -> LifecycleKind:
    return _KINDS[kind]


def _check(spec: ScheduleSpec) -> None:
    try:
        check_cron(spec.cron, spec.timezone)
    except ValueError as exc:
        raise BadRequest(f"cron: {exc}") from None


def _k(schedule: Schedule) -> tuple[str, str]:
    return (schedule.id, schedule.server)
