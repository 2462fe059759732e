"""``lightd-coordinator containers schedules VERB NODE SERVER ...``: a server's schedules.

Over the coordinator's REST sugar (``/api/v1/nodes/{id}/containers/{server}/schedules``)::

    schedules list   NODE SERVER                    the schedules, as a table
    schedules create NODE SERVER --name --cron --task ... | --spec FILE
    schedules update NODE SERVER SCHEDULE [--enable|--disable] [--cron ...] | --spec FILE
    schedules delete NODE SERVER SCHEDULE
    schedules run    NODE SERVER SCHEDULE           run it now

A task on the command line is ``[DELAY/]ACTION[:PAYLOAD]``: ``power:restart``,
``30s/power:stop``, ``command:say hello``, ``backup``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightd_coordinator.operator.client import Answer, Api, OperatorError
from lightd_coordinator.operator.rendering import out
from lightd_shared.commands import CommandResult
from lightd_shared.durations import format_duration
from lightd_shared.schedules import ScheduleList, ScheduleView
from lightd_shared.tables import fields, table
from lightd_shared.timestamps import format_timestamp

__all__ = ["add_schedule_commands", "parse_task", "run_schedules", "schedule_table"]


def add_schedule_commands(
    c_sub: Any, verb: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """Add ``containers schedules ...`` to the ``containers`` subparsers."""
    schedules = c_sub.add_parser("schedules", help="a server's scheduled tasks")
    s_sub = schedules.add_subparsers(dest="schedules_verb", metavar="VERB", required=True)

    def target(parser: argparse.ArgumentParser, with_id: bool) -> argparse.ArgumentParser:
        verb(parser)
        parser.add_argument("node")
        parser.add_argument("server")
        if with_id:
            parser.add_argument("schedule")
        return parser

    target(s_sub.add_parser("list", help="the server's schedules"), False)
    create = target(s_sub.add_parser("create", help="create a schedule"), False)
    create.add_argument("--spec", help="a JSON schedule file ('-': stdin); the flags win")
    create.add_argument("--id", dest="schedule_id", help="the schedule's id (made if absent)")
    create.add_argument("--task", action="append", default=[], metavar="[DELAY/]ACTION[:PAYLOAD]")
    update = target(s_sub.add_parser("update", help="change some fields of a schedule"), True)
    update.add_argument("--spec", help="a JSON file of the fields to change ('-': stdin)")
    update.add_argument("--task", action="append", default=[], metavar="[DELAY/]ACTION[:PAYLOAD]")
    for parser in (create, update):
        parser.add_argument("--name")
        parser.add_argument("--cron", help="5 fields: minute hour day-of-month month day-of-week")
        parser.add_argument("--timezone", help="an IANA zone (default UTC)")
        parser.add_argument("--missed", choices=["run_once", "skip"])
        parser.add_argument(
            "--only-when-running",
            dest="only_when_running",
            action=argparse.BooleanOptionalAction,
            default=None,
        )
        parser.add_argument(
            "--enabled", dest="enabled", action=argparse.BooleanOptionalAction, default=None
        )
    target(s_sub.add_parser("delete", help="delete a schedule"), True)
    target(s_sub.add_parser("run", help="run a schedule now"), True)


def parse_task(text: str) -> dict[str, Any]:
    """``[DELAY/]ACTION[:PAYLOAD]`` as a task body."""
    head, colon, payload = text.partition(":")
    delay, slash, action = head.rpartition("/")
    task: dict[str, Any] = {"action": action}
    if colon:
        task["payload"] = payload
    if slash:
        task["delay"] = delay
    if not action:
        raise OperatorError(f"--task {text!r} must look like [DELAY/]ACTION[:PAYLOAD]")
    return task


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.spec:
        try:
            text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
            loaded = json.loads(text)
        except (OSError, ValueError) as exc:
            raise OperatorError(f"--spec {args.spec}: {exc}") from None
        if not isinstance(loaded, dict):
            raise OperatorError(f"--spec {args.spec}: must be a JSON object")
        body.update(loaded)
    for name in ("name", "cron", "timezone", "missed", "only_when_running", "enabled"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if getattr(args, "schedule_id", None):
        body["id"] = args.schedule_id
    if args.task:
        body["tasks"] = [parse_task(task) for task in args.task]
    return body


def _task_text(view: ScheduleView) -> str:
    parts = []
    for task in view.tasks:
        delay = f"{format_duration(task.delay)}/" if task.delay else ""
        payload = f":{task.payload}" if task.payload else ""
        parts.append(f"{delay}{task.action}{payload}")
    return ", ".join(parts)


def _last(view: ScheduleView) -> str:
    run = view.last_result
    if run is None:
        return "-"
    detail = f" ({run.error})" if run.error else ""
    return f"{run.outcome} at {format_timestamp(run.started)}{detail}"


def schedule_table(schedules: list[ScheduleView]) -> str:
    """The schedules as ``lightd-coordinator containers schedules list`` prints them."""
    rows = [
        [
            v.id,
            v.name,
            v.cron + ("" if v.timezone == "UTC" else f" ({v.timezone})"),
            "yes" if v.enabled else "no",
            format_timestamp(v.next_run) if v.next_run else "-",
            _last(v),
            _task_text(v),
        ]
        for v in schedules
    ]
    return table(["ID", "NAME", "CRON", "ENABLED", "NEXT RUN", "LAST RESULT", "TASKS"], rows)


def _details(view: ScheduleView) -> str:
    head = fields(
        [
            ("id", view.id),
            ("server", view.server),
            ("name", view.name),
            ("cron", f"{view.cron} ({view.timezone})"),
            ("enabled", "yes" if view.enabled else "no"),
            ("only when running", "yes" if view.only_when_running else "no"),
            ("missed", view.missed),
            ("running", "yes" if view.running else "no"),
            ("next run", format_timestamp(view.next_run) if view.next_run else "-"),
            ("last result", _last(view)),
        ]
    )
    tasks = table(
        ["#", "DELAY", "ACTION", "PAYLOAD", "ON FAILURE"],
        [
            [
                str(i),
                format_duration(t.delay),
                t.action,
                t.payload,
                "continue" if t.continue_on_failure else "stop",
            ]
            for i, t in enumerate(view.tasks)
        ],
    )
    return f"{head}\n\n{tasks}"


def run_schedules(api: Api, args: argparse.Namespace) -> int:
    """One ``containers schedules`` verb."""
    base = f"/api/v1/nodes/{args.node}/containers/{args.server}/schedules"
    verb = args.schedules_verb
    answer: Answer[CommandResult]
    if verb == "list":
        answer = api.fetch(CommandResult, "GET", base)
    elif verb == "create":
        answer = api.fetch(CommandResult, "POST", base, json=_body(args))
    elif verb == "update":
        answer = api.fetch(CommandResult, "PATCH", f"{base}/{args.schedule}", json=_body(args))
    elif verb == "delete":
        answer = api.fetch(CommandResult, "DELETE", f"{base}/{args.schedule}")
    else:
        answer = api.fetch(CommandResult, "POST", f"{base}/{args.schedule}/run-now")
    result = answer.model
    if args.json:
        out(json.dumps(answer.raw, indent=2))
        return 0 if result.status == "success" else 1
    if result.status != "success":
        out(f"{result.status}: {result.output}", err=True)
        return 1
    data = result.data
    if isinstance(data, ScheduleList):
        out(schedule_table(data.schedules) if data.schedules else "no schedules")
    elif isinstance(data, ScheduleView):
        out(_details(data))
    else:
        out(result.output)
    return 0
