"""The operator verbs' argparse: nodes, dispatch, containers, services, events, activity."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from lightd_coordinator.operator.verbs_activity import add_activity_command
from lightd_coordinator.operator.verbs_backups import add_backup_verbs
from lightd_coordinator.operator.verbs_files import add_files_verbs
from lightd_coordinator.operator.verbs_quota import add_quota_verb
from lightd_coordinator.operator.verbs_schedules import add_schedule_commands

__all__ = ["OPERATOR_COMMANDS", "add_operator_commands"]

OPERATOR_COMMANDS: tuple[str, ...] = (
    "nodes",
    "dispatch",
    "containers",
    "services",
    "events",
    "activity",
)
"""The top-level commands this package adds (each runs through :func:`run_operator`)."""

_POWER_HELP = {
    "start": "start a server",
    "stop": "stop a server (SIGTERM, then the kill after its grace)",
    "restart": "restart a server",
    "kill": "kill a server",
    "reinstall": "reinstall a server (its install script runs again)",
    "delete": "delete a server (and its container)",
    "status": "show a server's status",
    "logs": "show a server's output",
}


def add_operator_commands(sub: Any, connection: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the operator verbs to the ``lightd-coordinator`` parser (``connection`` adds the
    ``-c/--url/--token`` options every verb shares)."""

    def verb(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        connection(parser)
        parser.add_argument("--json", action="store_true", help="print the API's JSON")
        return parser

    nodes = sub.add_parser("nodes", help="list, show or delete nodes")
    nodes_sub = nodes.add_subparsers(dest="nodes_verb", metavar="VERB", required=True)
    listing = verb(nodes_sub.add_parser("list", help="all nodes, as a table"))
    listing.add_argument("--status", choices=["active", "inactive"])
    listing.add_argument("--label", action="append", default=[], help="key=value (repeatable)")
    show = verb(nodes_sub.add_parser("show", help="one node: record, status, services"))
    show.add_argument("node")
    delete = verb(
        nodes_sub.add_parser(
            "delete", help="unregister a node (it may enrol again, with a new dispatch key)"
        )
    )
    delete.add_argument("node")

    dispatch = verb(sub.add_parser("dispatch", help="run a command on a node or a selector"))
    dispatch.add_argument("node", nargs="?", help="the node id (or use --selector)")
    dispatch.add_argument("action", help="shell command (exec) or container action")
    dispatch.add_argument("--selector", action="append", default=[], help="key=value labels")
    dispatch.add_argument("--type", choices=["exec", "container"], default="exec")
    dispatch.add_argument("--timeout", default="30s", help="how long to wait (default 30s)")
    dispatch.add_argument(
        "--param", action="append", default=[], help="key=value params (repeatable)"
    )
    dispatch.add_argument("--user", help="who is asking (recorded with the command)")

    containers = sub.add_parser("containers", help="servers on a node")
    c_sub = containers.add_subparsers(dest="containers_verb", metavar="VERB", required=True)
    verb(c_sub.add_parser("list", help="the node's servers")).add_argument("node")
    create = verb(
        c_sub.add_parser(
            "create",
            help="create a server on a node",
            description="Create a server from --spec and/or the flags (the flags win). With "
            "--wait (the default on a terminal) follow its lifecycle on /ws until it runs "
            "(ready, with start_on_completion false) or fails.",
        )
    )
    create.add_argument("node")
    create.add_argument("--spec", help="a JSON container spec file ('-': stdin)")
    create.add_argument("--id", dest="server_id", help="the server id")
    create.add_argument("--image", help="the image")
    create.add_argument("--cmd", help="startup command (runs with /bin/sh -c)")
    create.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="[HOST:]PORT[/udp]",
        help="a container port, optionally published on HOST (repeatable)",
    )
    create.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    create.add_argument(
        "--install-script",
        metavar="@FILE|SCRIPT",
        help="the install script: @FILE reads it from FILE ('@-': stdin), else the text itself",
    )
    create.add_argument("--memory", help="memory limit such as 512m or 1g")
    create.add_argument("--disk", help="enforced disk limit such as 512m or 10g (limits.disk)")
    wait = create.add_mutually_exclusive_group()
    wait.add_argument(
        "--wait",
        dest="wait",
        action="store_true",
        default=None,
        help="follow the lifecycle until running or failed (default on a terminal)",
    )
    wait.add_argument("--no-wait", dest="wait", action="store_false", help="return at installing")
    create.add_argument(
        "--timeout", default="10m", help="how long --wait waits for the lifecycle (default 10m)"
    )
    for action, text in _POWER_HELP.items():
        command = verb(c_sub.add_parser(action, help=text))
        command.add_argument("node")
        command.add_argument("server")
        if action == "logs":
            command.add_argument("--tail", type=int, default=None, help="last N lines")
    run_inside = verb(c_sub.add_parser("exec", help="run a command inside a server"))
    run_inside.add_argument("node")
    run_inside.add_argument("server")
    run_inside.add_argument(
        "argv",
        nargs="+",
        metavar="COMMAND",
        help="one word: runs with /bin/sh -c; several: as is (put options after them, or use --)",
    )
    run_inside.add_argument("--timeout", default="30s", help="how long it may run (30s)")
    add_backup_verbs(c_sub, verb)
    add_quota_verb(c_sub, verb)
    console = verb(
        c_sub.add_parser("console", help="tail a server's output and send it what you type")
    )
    console.add_argument("node")
    console.add_argument("server")
    console.add_argument("--tail", type=int, default=None, help="start with N lines (150)")
    add_schedule_commands(c_sub, verb)
    add_files_verbs(c_sub, verb)  # containers files ls|cat|write|upload|download|... (own module)

    verb(sub.add_parser("services", help="services per node"))

    events = verb(sub.add_parser("events", help="tail the live event stream"))
    events.add_argument("--types", help="comma-separated event types")
    events.add_argument("--node", help="only events about this node")

    add_activity_command(sub, verb)
