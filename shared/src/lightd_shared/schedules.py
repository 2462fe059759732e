"""Scheduled tasks of a server: the agent's ``/containers/{id}/schedules`` API, one copy.

A schedule fires on a 5-field cron expression (minute hour day-of-month month day-of-week) in
its ``timezone`` (UTC unless named, an IANA zone such as ``Europe/Berlin``) and runs its
``tasks`` in order, each ``delay`` after the previous one ended::

    {"name": "nightly restart", "cron": "0 4 * * *", "only_when_running": true,
     "tasks": [{"action": "command", "payload": "say restarting in 1 minute"},
               {"action": "power", "payload": "restart", "delay": "1m"}]}

Task actions (as the game-panel daemons have them): ``power`` (``payload``: ``start``,
``stop``, ``restart`` or ``kill``), ``command`` (``payload``: one console line) and ``backup``
(``payload`` unused). A failed task ends the run unless it has ``continue_on_failure``.

The cron expression is checked here for its shape (five fields of cron characters); the agent
checks it fully (``croniter``: ranges, steps, a date that never comes) and answers 422 naming
``cron`` with the problem.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lightd_shared.base import Payload, Request
from lightd_shared.durations import Duration
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import Identifier

__all__ = [
    "MAX_SCHEDULES",
    "MAX_TASKS",
    "MAX_TASK_DELAY",
    "POWER_WORDS",
    "SCHEDULE_EVENT_KINDS",
    "MissedPolicy",
    "RunOutcome",
    "RunTrigger",
    "ScheduleAction",
    "ScheduleEvent",
    "ScheduleList",
    "SchedulePatch",
    "ScheduleRun",
    "ScheduleSkip",
    "ScheduleSpec",
    "ScheduleTask",
    "ScheduleView",
    "TaskOutcome",
    "TaskResult",
    "check_cron_shape",
]

MAX_TASKS = 10
"""Most tasks in one schedule (the panels' default limit)."""
MAX_SCHEDULES = 50
"""Most schedules of one server."""
MAX_TASK_DELAY = timedelta(minutes=15)
"""Longest ``delay`` before one task (the panels allow 900 s)."""
MAX_NAME = 100
MAX_PAYLOAD = 1024
"""Longest ``payload`` (a console line)."""

POWER_WORDS: tuple[str, ...] = ("start", "stop", "restart", "kill")
SCHEDULE_EVENT_KINDS: tuple[str, ...] = (
    "schedule_started",
    "schedule_task",
    "schedule_finished",
    "schedule_skipped",
)
"""The agent's event kinds (``GET /events``) for schedule runs; the event's ``data`` is a
:class:`ScheduleEvent` as JSON text."""

ScheduleAction = Literal["power", "command", "backup"]
MissedPolicy = Literal["run_once", "skip"]
RunTrigger = Literal["cron", "missed", "run_now"]
RunOutcome = Literal["running", "success", "failed", "skipped"]
TaskOutcome = Literal["success", "failed", "skipped"]

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#LW-]{1,64}$")


def check_cron_shape(value: str) -> str:
    """Five whitespace-separated fields of cron characters, else :class:`ValueError`."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron must have exactly 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(fields)}: {value[:80]!r}"
        )
    for field in fields:
        if not _CRON_FIELD.fullmatch(field):
            raise ValueError(f"cron field {field[:40]!r} holds characters cron does not use")
    return " ".join(fields)


def _zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value[:60]!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None
    return value


class ScheduleTask(Request):
    """One step of a schedule: what to do, and how long to wait after the previous step."""

    action: ScheduleAction = Field(description="power, command (a console line) or backup")
    payload: str = Field(
        default="",
        max_length=MAX_PAYLOAD,
        description="power: start|stop|restart|kill; command: the console line; backup: unused",
    )
    delay: Duration = Field(
        default=timedelta(0), description="Wait this long after the previous task (at most 15m)"
    )
    continue_on_failure: bool = Field(
        default=False, description="Go on with the next task when this one fails"
    )

    @field_validator("delay")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > MAX_TASK_DELAY:
            raise ValueError("delay must be between 0s and 15m")
        return value

    @model_validator(mode="after")
    def _payload_fits(self) -> ScheduleTask:
        if self.action == "power" and self.payload not in POWER_WORDS:
            raise ValueError(
                f"a power task's payload is one of {', '.join(POWER_WORDS)}, "
                f"not {self.payload[:40]!r}"
            )
        if self.action == "command":
            if not self.payload.strip():
                raise ValueError("a command task's payload is the console line: must not be empty")
            if "\n" in self.payload or "\r" in self.payload:
                raise ValueError("a command task's payload is one line: no line breaks")
        return self


class _ScheduleFields(Request):
    name: str = Field(min_length=1, max_length=MAX_NAME, description="A name for people")
    cron: str = Field(
        max_length=200, description="5-field cron: minute hour day-of-month month day-of-week"
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA zone of the cron")
    enabled: bool = True
    only_when_running: bool = Field(
        default=False, description="Skip a run when the server is not running"
    )
    missed: MissedPolicy = Field(
        default="skip",
        description="A run missed while the agent was down: run it once at start, or skip it",
    )
    tasks: list[ScheduleTask] = Field(
        min_length=1, max_length=MAX_TASKS, description="1 to 10 tasks, run in order"
    )

    @field_validator("cron")
    @classmethod
    def _cron_shape(cls, value: str) -> str:
        return check_cron_shape(value)

    @field_validator("timezone")
    @classmethod
    def _zone_known(cls, value: str) -> str:
        return _zone(value)


class ScheduleSpec(_ScheduleFields):
    """``POST`` (create) and ``PUT`` (replace) body. ``id`` is made when left out."""

    id: Identifier | None = Field(default=None, description="The schedule's id (made if absent)")


class SchedulePatch(Request):
    """``PATCH`` body: only the fields given change (``id`` never does)."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    cron: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    only_when_running: bool | None = None
    missed: MissedPolicy | None = None
    tasks: list[ScheduleTask] | None = Field(default=None, min_length=1, max_length=MAX_TASKS)

    @field_validator("cron")
    @classmethod
    def _cron_shape(cls, value: str | None) -> str | None:
        return None if value is None else check_cron_shape(value)

    @field_validator("timezone")
    @classmethod
    def _zone_known(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class TaskResult(Payload):
    """How one task of a run went."""

    index: int = Field(ge=0)
    action: ScheduleAction
    outcome: TaskOutcome
    error: str | None = None
    started: Timestamp | None = None
    finished: Timestamp | None = None


class ScheduleRun(Payload):
    """One run of a schedule: ``outcome`` is ``running`` until it ends."""

    trigger: RunTrigger
    started: Timestamp
    finished: Timestamp | None = None
    outcome: RunOutcome
    error: str | None = Field(default=None, description="Why it failed or was skipped")
    tasks: list[TaskResult] = Field(default_factory=list)


class ScheduleSkip(Payload):
    """A trigger that did not start a run (the schedule was still running)."""

    at: Timestamp
    trigger: RunTrigger
    reason: str


class ScheduleView(Payload):
    """A schedule as the agent answers it: its fields, when it runs next, how it last went."""

    id: str
    server: str
    name: str
    cron: str
    timezone: str = "UTC"
    enabled: bool = True
    only_when_running: bool = False
    missed: MissedPolicy = "skip"
    tasks: list[ScheduleTask]
    next_run: Timestamp | None = Field(default=None, description="None while disabled")
    running: bool = False
    last_result: ScheduleRun | None = None
    last_skipped: ScheduleSkip | None = None


class ScheduleList(Payload):
    schedules: list[ScheduleView]
    count: int


class ScheduleEvent(Payload):
    """The ``data`` of a ``schedule_*`` event (as JSON text on the agent's ``GET /events``)."""

    schedule: str
    name: str
    trigger: RunTrigger
    outcome: RunOutcome | TaskOutcome
    task: TaskResult | None = Field(default=None, description="schedule_task: the task")
    error: str | None = None
