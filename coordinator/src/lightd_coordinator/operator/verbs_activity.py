"""``lightd-coordinator activity``: the activity log as a table (or its JSON).

::

    lightd-coordinator activity [--node N] [--server S] [--user U] [--action A] [--kind K]
                                [--outcome O] [--since 1h] [--until T] [--limit 50] [--all]

``--since``/``--until`` take an RFC 3339 time or a duration ago (``30m``, ``2h``, ``168h``);
``--all`` follows ``next_before`` until the filter is exhausted (else one page, newest first).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from lightd_coordinator.operator.client import Api
from lightd_coordinator.operator.rendering import out
from lightd_shared.activity import (
    ACTIVITY_KINDS,
    DEFAULT_ACTIVITY_LIMIT,
    MAX_ACTIVITY_LIMIT,
    ActivityEntry,
    ActivityPage,
)
from lightd_shared.tables import table
from lightd_shared.timestamps import format_timestamp

__all__ = ["activity_table", "add_activity_command", "run_activity"]

_FILTERS = ("node", "server", "user", "action", "kind", "outcome", "since", "until")


def add_activity_command(
    sub: Any, verb: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """The ``activity`` verb (``verb`` adds the options every verb shares)."""
    parser = verb(
        sub.add_parser(
            "activity",
            help="who did what: the activity log, newest first",
            description="The coordinator's activity log: mutating API calls and dispatched "
            "commands, with who, node, server, action and outcome. Newest first.",
        )
    )
    parser.add_argument("--node", help="only this node")
    parser.add_argument("--server", help="only this server")
    parser.add_argument("--user", help="only this user (or token subject)")
    parser.add_argument("--action", help="an action (node.register), or a prefix: 'container.*'")
    parser.add_argument("--kind", choices=ACTIVITY_KINDS)
    parser.add_argument("--outcome", help="success, failed, timeout, an HTTP code or 4xx")
    parser.add_argument("--since", help="RFC 3339, or a duration ago: 30m, 1h, 168h")
    parser.add_argument("--until", help="RFC 3339, or a duration ago")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_ACTIVITY_LIMIT,
        help=f"entries per page, at most {MAX_ACTIVITY_LIMIT} (default {DEFAULT_ACTIVITY_LIMIT})",
    )
    parser.add_argument("--all", action="store_true", help="every page, not only the newest")


def _who(entry: ActivityEntry) -> str:
    if entry.user and entry.subject and entry.user != entry.subject:
        return f"{entry.user} ({entry.subject})"
    return entry.user or entry.subject or "-"


def activity_table(entries: Sequence[ActivityEntry]) -> str:
    if not entries:
        return "no activity matches"
    rows = [
        [
            format_timestamp(e.time.replace(microsecond=0)),
            _who(e),
            e.node or "-",
            e.server or "-",
            e.action,
            e.outcome,
            e.request_id or "-",
        ]
        for e in entries
    ]
    return table(["TIME", "USER", "NODE", "SERVER", "ACTION", "OUTCOME", "REQUEST"], rows)


def run_activity(api: Api, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        name: getattr(args, name) for name in _FILTERS if getattr(args, name) is not None
    }
    params["limit"] = args.limit
    entries: list[ActivityEntry] = []
    raw: list[Any] = []
    while True:
        page = api.fetch(ActivityPage, "GET", "/api/v1/activity", params=params)
        entries += page.model.entries
        raw += page.raw.get("entries", [])
        if not args.all or page.model.next_before is None:
            break
        params["before"] = page.model.next_before
    out(json.dumps({"entries": raw}, indent=2) if args.json else activity_table(entries))
    return 0
