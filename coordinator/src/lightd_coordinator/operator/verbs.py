"""What each operator verb does, over the typed client.

Waiting listens on ``/ws`` instead of polling: the stream is opened *before* the request that
starts the work, so no event can slip between the two.

- ``dispatch`` sends the command with ``?async=true`` and waits for each node's
  ``command_result`` event (a stream that ends early is resumed from its last event id, and the
  results still missing are read once with ``GET /api/v1/commands/{id}``).
- ``containers create --wait`` follows the server's ``server_update`` events (``installing``,
  ``ready``, ``running``, or the error) until it runs (or is ready, when it is not to be
  started) or fails. A node whose remote sync does not report to this coordinator sends no such
  events, so at ``ready`` and at every keep-alive ping the server's status is also read once.

Over 400 lines: one function per operator verb (nodes, dispatch, containers, status, token),
each small; they share the client and the rendering modules beside this one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lightd_coordinator.operator.client import TOKEN_ENV, Answer, Api, EventStream, OperatorError
from lightd_coordinator.operator.rendering import (
    Progress,
    event_line,
    node_details,
    node_table,
    out,
    result_answer,
    service_table,
    update_text,
)
from lightd_coordinator.operator.verbs_activity import run_activity
from lightd_coordinator.operator.verbs_backups import run_backup
from lightd_coordinator.operator.verbs_console import console_verb
from lightd_coordinator.operator.verbs_files import run_files_verb
from lightd_coordinator.operator.verbs_quota import run_quota
from lightd_coordinator.operator.verbs_schedules import run_schedules
from lightd_shared.commands import FINAL_STATUSES, CommandResult
from lightd_shared.containers import ContainerStatus
from lightd_shared.dispatch import FanOutResults
from lightd_shared.durations import format_duration, parse_duration
from lightd_shared.events import Event, ServerUpdate
from lightd_shared.nodes import NodeList, NodeRecord, NodeRemoved, NodeStatusView
from lightd_shared.remote import ErrorUpdate
from lightd_shared.services import ServiceListing

__all__ = ["VERBS", "run_operator"]

_SLACK = 30.0
"""Seconds to wait past a command's own timeout: the coordinator's dispatch retries and report."""


def _pairs(values: list[str], what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise OperatorError(f"{what} {value!r} must look like key=value")
        found[key] = item
    return found


def _duration(option: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise OperatorError(f"{option} {text!r}: {exc}") from None


def _emit(args: argparse.Namespace, raw: Any, human: Callable[[], str]) -> None:
    out(json.dumps(raw, indent=2) if args.json else human())


# -- nodes and services ----------------------------------------------------------------------
def _nodes(api: Api, args: argparse.Namespace) -> int:
    if args.nodes_verb == "list":
        params: list[tuple[str, str]] = [
            ("label", f"{k}={v}") for k, v in _pairs(args.label, "--label").items()
        ]
        if args.status:
            params.append(("status", args.status))
        listing = api.fetch(NodeList, "GET", "/api/v1/nodes", params=params)
        _emit(args, listing.raw, lambda: node_table(listing.model.nodes))
        return 0
    if args.nodes_verb == "delete":
        gone = api.fetch(NodeRemoved, "DELETE", f"/api/v1/nodes/{args.node}")
        _emit(args, gone.raw, lambda: gone.model.message)
        return 0
    node = api.fetch(NodeRecord, "GET", f"/api/v1/nodes/{args.node}")
    status = api.fetch(NodeStatusView, "GET", f"/api/v1/nodes/{args.node}/status")
    services = api.fetch(ServiceListing, "GET", "/api/v1/services")
    own = services.model.services.get(args.node, [])
    raw = {
        "node": node.raw,
        "status": status.raw,
        "services": services.raw.get("services", {}).get(args.node, []),
    }
    _emit(args, raw, lambda: node_details(node.model, status.model, own))
    return 0


def _services(api: Api, args: argparse.Namespace) -> int:
    listing = api.fetch(ServiceListing, "GET", "/api/v1/services")
    _emit(args, listing.raw, lambda: service_table(listing.model.services))
    return 0


# -- dispatch --------------------------------------------------------------------------------
def _command(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in _pairs(args.param, "--param").items():
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    params["timeout"] = args.timeout
    command: dict[str, Any] = {"type": args.type, "action": args.action, "params": params}
    if args.user:
        command["user"] = args.user
    return command


def _result_of(event: Event | None) -> CommandResult | None:
    if event is None or event.type != "command_result" or not isinstance(event.data, dict):
        return None
    try:
        return CommandResult.model_validate(event.data, strict=False)
    except ValidationError:
        return None


def _await_results(
    api: Api, stream: EventStream, results: list[CommandResult], budget: float, *, node: str | None
) -> list[CommandResult]:
    """The final result of each of ``results``, from ``command_result`` events on ``stream``."""
    current = {r.id: r for r in results}
    pending = {r.id for r in results if r.status not in FINAL_STATUSES}
    progress = Progress()
    deadline = time.monotonic() + budget

    def show() -> None:
        waiting = [current[i] for i in sorted(pending)]
        names = ", ".join(r.node_id for r in waiting[:5])
        more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        progress.show(f"waiting for {names}{more}: {waiting[0].status}")

    while pending:
        show()
        for item in stream:
            result = _result_of(item.event)
            if result is not None and result.id in current:
                current[result.id] = result
                if result.status in FINAL_STATUSES:
                    pending.discard(result.id)
            if not pending:
                break
            if time.monotonic() > deadline:
                progress.done()
                first = sorted(pending)[0]
                raise OperatorError(
                    f"no result for {len(pending)} command(s) within {budget:.0f}s; "
                    f"ask later with: curl {api.url}/api/v1/commands/{first}"
                )
            show()
        else:  # the stream ended (the coordinator restarted or dropped us): catch up, resume
            for command_id in sorted(pending):
                found = api.fetch(CommandResult, "GET", f"/api/v1/commands/{command_id}").model
                current[command_id] = found
                if found.status in FINAL_STATUSES:
                    pending.discard(command_id)
            if pending:
                with api.events(
                    types="command_result", node=node, last_event_id=stream.last_id
                ) as again:
                    return _await_results(api, again, list(current.values()), budget, node=node)
    progress.done()
    return [current[r.id] for r in results]


def _print_results(args: argparse.Namespace, results: list[CommandResult], many: bool) -> int:
    if args.json:
        dumped = [r.model_dump(mode="json") for r in results]
        out(json.dumps(dumped if many else dumped[0], indent=2))
    else:
        for result in results:
            took = format_duration(result.duration) if result.duration is not None else "-"
            if many:
                out(f"== {result.node_id}: {result.status} ({took})")
            elif result.status != "success":
                out(f"{result.status} ({took})", err=True)
            text = result_answer(result) if result.data is not None else result.output
            if text:
                out(text)
    return 0 if all(r.status == "success" for r in results) else 1


def _dispatch(api: Api, args: argparse.Namespace) -> int:
    command = _command(args)
    budget = _duration("--timeout", args.timeout).total_seconds() + _SLACK
    if args.selector and args.node:
        raise OperatorError("give a node id or --selector, not both")
    if not args.selector and not args.node:
        raise OperatorError("give a node id or --selector key=value")
    node = None if args.selector else args.node
    with api.events(types="command_result", node=node) as stream:
        if args.selector:
            body = {"selector": _pairs(args.selector, "--selector"), "command": command}
            started = api.fetch(
                FanOutResults, "POST", "/api/v1/commands", params={"async": "true"}, json=body
            )
            results = started.model.results
            if not results:
                if args.json:
                    out("[]")
                raise OperatorError(
                    f"no active node matches the selector {_pairs(args.selector, '--selector')}"
                    " (see `lightd-coordinator nodes list`)"
                )
        else:
            one = api.fetch(
                CommandResult,
                "POST",
                f"/api/v1/nodes/{args.node}/commands",
                params={"async": "true"},
                json=command,
            )
            results = [one.model]
        final = _await_results(api, stream, results, budget, node=node)
    return _print_results(args, final, many=bool(args.selector))


# -- containers ------------------------------------------------------------------------------
def _container_result(args: argparse.Namespace, answer: Answer[CommandResult]) -> int:
    result = answer.model
    if args.json:
        out(json.dumps(answer.raw, indent=2))
        return 0 if result.status == "success" else 1
    if result.status != "success":
        out(f"{result.status}: {result.output}", err=True)
        return 1
    out(result_answer(result))
    return 0


def _read_text(option: str, value: str) -> str:
    """``@FILE`` (``@-``: stdin) as its text, anything else as itself."""
    if not value.startswith("@"):
        return value
    name = value[1:]
    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text("utf-8")
    except OSError as exc:
        raise OperatorError(f"{option} {value}: {exc.strerror or exc}") from None


def _port(value: str) -> dict[str, Any]:
    """``8080``, ``18080:8080``, ``8080/udp``, ``18080:8080/udp`` -> a port mapping."""
    text, _, protocol = value.partition("/")
    host, _, container = text.rpartition(":")
    try:
        mapping: dict[str, Any] = {"container": int(container)}
        if host:
            mapping["host"] = int(host)
    except ValueError:
        raise OperatorError(
            f"--port {value!r} must look like PORT, HOST:PORT or PORT/udp"
        ) from None
    if protocol:
        mapping["protocol"] = protocol
    return mapping


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    """The container spec: ``--spec`` (if given), then the flags over it."""
    spec: dict[str, Any] = {}
    if args.spec:
        try:
            text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text("utf-8")
            loaded = json.loads(text)
        except (OSError, ValueError) as exc:
            raise OperatorError(f"--spec {args.spec}: {exc}") from None
        if not isinstance(loaded, dict):
            raise OperatorError("--spec must hold a JSON object (a container spec)")
        spec = loaded
    if args.server_id:
        spec["id"] = args.server_id
    if args.image:
        spec["image"] = args.image
    if args.cmd:
        spec["startup_command"] = args.cmd
    if args.port:
        spec["ports"] = [_port(port) for port in args.port]
    if args.env:
        spec["env"] = {**(spec.get("env") or {}), **_pairs(args.env, "--env")}
    if args.memory:
        spec["limits"] = {**(spec.get("limits") or {}), "memory": args.memory}
    if args.disk:
        spec["limits"] = {**(spec.get("limits") or {}), "disk": args.disk}
    if args.install_script is not None:
        spec["install_script"] = _read_text("--install-script", args.install_script)
    if "id" not in spec or "image" not in spec:
        raise OperatorError("give --spec FILE, or at least --id and --image")
    return spec


def _server_state(api: Api, node: str, server: str) -> ContainerStatus | None:
    answer = api.fetch(CommandResult, "GET", f"/api/v1/nodes/{node}/containers/{server}").model
    return answer.data if isinstance(answer.data, ContainerStatus) else None


def _follow(
    api: Api,
    args: argparse.Namespace,
    stream: EventStream,
    server: str,
    *,
    start: bool,
    budget: timedelta,
) -> int:
    """Print the server's lifecycle as it happens; 0 once it runs (or is ready), else 1."""
    goal = "running" if start else "ready"
    progress = Progress()
    deadline = time.monotonic() + budget.total_seconds()
    state = "installing"
    checked_ready = False

    def settled(status: ContainerStatus | None) -> int | None:
        if status is None:
            return None
        if status.state == goal or (status.state == "running" and goal == "ready"):
            out(f"{server}: {status.state}")
            return 0
        if status.state in ("failed", "crashed"):
            out(f"{server}: {status.state}: {status.error or 'see containers status'}", err=True)
            return 1
        return None

    for item in stream:
        progress.show(f"{server} on {args.node}: {state}")
        event = item.event
        if event is not None and event.type == "server_update" and isinstance(event.data, dict):
            try:
                update = ServerUpdate.model_validate(event.data, strict=False)
            except ValidationError:
                continue
            if update.server != server:
                continue
            if args.json:
                out(json.dumps(event.data))
            body = update.update
            if isinstance(body, ErrorUpdate):
                progress.done()
                out(f"{server}: {update_text(update)}", err=True)
                return 1
            state = body.status
            progress.done()
            if not args.json:
                out(f"{server}: {state}")
            if state == goal or (state == "running" and goal == "ready"):
                return 0
            if state in ("failed", "crashed"):
                return 1
            if state == "ready" and not checked_ready:
                checked_ready = True  # a remote that reports only the seed's words stops here
                code = settled(_server_state(api, args.node, server))
                if code is not None:
                    return code
        elif event is None:  # a keep-alive ping: the events may not come at all; look once
            code = settled(_server_state(api, args.node, server))
            if code is not None:
                progress.done()
                return code
        if time.monotonic() > deadline:
            progress.done()
            raise OperatorError(
                f"{server} is still {state} after {format_duration(budget)} (--timeout); "
                f"follow it with `lightd-coordinator containers status {args.node} {server}`"
            )
    progress.done()
    raise OperatorError(f"the event stream from {api.url} ended while {server} was {state}")


def _create(api: Api, args: argparse.Namespace, base: str) -> int:
    spec = _spec(args)
    wait = sys.stdout.isatty() if args.wait is None else args.wait
    if not wait:
        return _container_result(args, api.fetch(CommandResult, "POST", base, json=spec))
    budget = _duration("--timeout", args.timeout)
    with api.events(types="server_update", node=args.node) as stream:
        code = _container_result(args, api.fetch(CommandResult, "POST", base, json=spec))
        if code != 0:
            return code
        start = spec.get("start_on_completion", True) is not False
        return _follow(api, args, stream, str(spec["id"]), start=start, budget=budget)


def _containers(api: Api, args: argparse.Namespace) -> int:
    base = f"/api/v1/nodes/{args.node}/containers"
    verb = args.containers_verb
    if verb == "create":
        return _create(api, args, base)
    if verb == "backup":
        return run_backup(api, args, base)
    if verb == "console":
        return console_verb(api, args)
    if verb == "schedules":
        return run_schedules(api, args)
    if verb == "files":
        return run_files_verb(api, args)
    answer: Answer[CommandResult]
    if verb == "list":
        answer = api.fetch(CommandResult, "GET", base)
    elif verb == "status":
        answer = api.fetch(CommandResult, "GET", f"{base}/{args.server}")
    elif verb == "delete":
        answer = api.fetch(CommandResult, "DELETE", f"{base}/{args.server}")
    elif verb == "logs":
        params = {} if args.tail is None else {"tail": args.tail}
        answer = api.fetch(CommandResult, "GET", f"{base}/{args.server}/logs", params=params)
    elif verb == "quota":
        return run_quota(api, args, base)
    elif verb == "exec":
        command: str | list[str] = args.argv[0] if len(args.argv) == 1 else list(args.argv)
        budget = _duration("--timeout", args.timeout).total_seconds() + _SLACK
        answer = api.fetch(
            CommandResult,
            "POST",
            f"{base}/{args.server}/exec",
            json={"command": command, "timeout": args.timeout},
            timeout=budget,
        )
    else:
        answer = api.fetch(CommandResult, "POST", f"{base}/{args.server}/{verb}")
    return _container_result(args, answer)


# -- events ----------------------------------------------------------------------------------
def _events(api: Api, args: argparse.Namespace) -> int:
    with api.events(types=args.types, node=args.node) as stream:
        for _, data in stream.raw():
            if data is None:
                continue
            if args.json:
                out(data)
                continue
            try:
                out(event_line(Event.model_validate_json(data)))
            except ValidationError:
                out(data)
    return 0


VERBS: dict[str, Callable[[Api, argparse.Namespace], int]] = {
    "nodes": _nodes,
    "services": _services,
    "dispatch": _dispatch,
    "containers": _containers,
    "events": _events,
    "activity": run_activity,
}


def run_operator(
    args: argparse.Namespace, url: str, token: str | None, *, token_source: str = "--token"
) -> int:
    """Run one operator verb; raise :class:`OperatorError` with a message for the user.

    ``token_source`` says where the token came from (``--token``, ``$LIGHTD_COORD_TOKEN``, the
    config's ``server.auth_token``), so that a refusal can say which one was wrong.
    """
    if token is None and os.environ.get(TOKEN_ENV):
        token, token_source = os.environ[TOKEN_ENV], f"${TOKEN_ENV}"
    api = Api(url, token, token_source=token_source)
    try:
        return VERBS[args.command](api, args)
    finally:
        api.close()
